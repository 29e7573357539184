"""What a recommendation request asks for: who, how many, where, and which filters and rules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from penchant.schema.common import AttributeValue, Id, UtcDatetime, utcnow


class Range(BaseModel):
    """A numeric range (either end open) or a set of allowed values for one attribute."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None
    any_of: list[AttributeValue] | None = Field(default=None, alias="in", max_length=1_000)

    @model_validator(mode="after")
    def _something(self) -> Range:
        if self.min is None and self.max is None and self.any_of is None:
            raise ValueError("give min, max or in")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class FilterSpec(BaseModel):
    """Which items may be shown. Lists are any-of; every given condition must hold."""

    model_config = ConfigDict(extra="forbid")

    categories: list[Id] | None = Field(default=None, max_length=1_000)
    exclude_categories: list[Id] = Field(default_factory=list, max_length=1_000)
    providers: list[Id] | None = Field(default=None, max_length=1_000)
    exclude_providers: list[Id] = Field(default_factory=list, max_length=1_000)
    attributes: dict[str, Range] = Field(default_factory=dict)
    available_only: bool = Field(default=True, description="drop unavailable or expired items")
    exclude_seen: bool = Field(default=True, description="drop what the person consumed")
    exclude_purchased: bool = True
    exclude_dismissed: bool = True

    def merged(self, other: FilterSpec | None) -> FilterSpec:
        """This surface's filters narrowed by a request's: both must hold."""
        if other is None:
            return self
        sent = other.model_fields_set

        def both(a: list[str] | None, b: list[str] | None) -> list[str] | None:
            if a is None or b is None:
                return a if b is None else b
            return [x for x in a if x in set(b)]

        return FilterSpec(
            categories=both(self.categories, other.categories),
            exclude_categories=self.exclude_categories + other.exclude_categories,
            providers=both(self.providers, other.providers),
            exclude_providers=self.exclude_providers + other.exclude_providers,
            attributes={**self.attributes, **other.attributes},
            available_only=other.available_only
            if "available_only" in sent
            else self.available_only,
            exclude_seen=other.exclude_seen if "exclude_seen" in sent else self.exclude_seen,
            exclude_purchased=(
                other.exclude_purchased if "exclude_purchased" in sent else self.exclude_purchased
            ),
            exclude_dismissed=(
                other.exclude_dismissed if "exclude_dismissed" in sent else self.exclude_dismissed
            ),
        )


class Match(BaseModel):
    """Which items a rule applies to: any listed id, category, provider or tag, and every
    attribute condition."""

    model_config = ConfigDict(extra="forbid")

    item_ids: list[Id] = Field(default_factory=list, max_length=1_000)
    categories: list[Id] = Field(default_factory=list, max_length=1_000)
    providers: list[Id] = Field(default_factory=list, max_length=1_000)
    tags: list[Id] = Field(default_factory=list, max_length=1_000)
    attributes: dict[str, Range] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> Match:
        if not (self.item_ids or self.categories or self.providers or self.tags or self.attributes):
            raise ValueError("a match needs item_ids, categories, providers, tags or attributes")
        return self


class Rule(BaseModel):
    """A business rule: boost, bury, pin or block the items it matches.

    - `boost`: multiply the score of matching items by `factor` (> 1 lifts them).
    - `bury`: matching items go after every other item (they stay as a fallback).
    - `pin`: the first matching item that passes the filters is placed at `position`
      (1 = first), even if no source proposed it.
    - `block`: matching items are never shown.
    """

    model_config = ConfigDict(extra="forbid")

    action: Literal["boost", "bury", "pin", "block"]
    match: Match
    factor: float = Field(default=1.5, gt=0.0, le=1_000.0, allow_inf_nan=False)
    position: int = Field(default=1, ge=1, le=1_000)
    reason: str | None = Field(default=None, max_length=200)


class RequestContext(BaseModel):
    """Where the request comes from: device, locale, time, the item on the page."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=35)
    time: UtcDatetime | None = Field(default=None, description="default: now")
    page_item: Id | None = Field(default=None, description="the item the person is looking at")
    category: Id | None = Field(default=None, description="the category being browsed")
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)


#: The re-ranking stages whose strength a request may set.
RerankKind = Literal["diversity", "calibration", "long_tail", "popularity_penalty", "fair_exposure"]


class RankingRequest(BaseModel):
    """One recommendation request."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id | None = None
    session_id: Id | None = None
    k: int = Field(default=10, ge=1)
    surface: Id | None = None
    context: RequestContext = Field(default_factory=RequestContext)
    filters: FilterSpec | None = None
    rules: list[Rule] = Field(default_factory=list, max_length=100)
    exclude: list[Id] = Field(default_factory=list, max_length=10_000)
    rerank: dict[RerankKind, Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="per re-ranking stage kind, the strength this request asks of it (the "
        "surface's own when absent); a kind the surface does not run changes nothing",
    )
    profiling: bool = Field(
        default=True,
        description="false: rank without the person's own data (their history and profile)",
    )

    def now(self) -> datetime:
        """The request's time: the context's, or the current time."""
        return self.context.time or utcnow()
