"""Dynamic content records: slots, their variants, and who each variant may be shown to."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from penchant.schema.common import AttributeValue, Id, UtcDatetime

#: Context features a slot's contextual policy can see, each a few numbers (see
#: `penchant.content.features`).
FEATURE_GROUPS = ("device", "time", "segment", "locale", "surface")

#: Outcome types that can carry a reward back to a decision.
REWARD_TYPES = frozenset({"click", "conversion", "purchase", "add_to_cart", "like", "dwell"})

VariantStatus = Literal["pending", "approved", "retired"]
FeatureGroup = Literal["device", "time", "segment", "locale", "surface"]

_NO_NUL = r"^[^\x00]*$"


class Eligibility(BaseModel):
    """Who and when a variant may be shown to; every rule that is set must hold.

    Locales match by language prefix: "en" admits "en-GB". Hours and weekdays are UTC
    (0-23; Monday is 0).
    """

    model_config = ConfigDict(extra="forbid")

    locales: list[str] = Field(default_factory=list, max_length=100)
    devices: list[str] = Field(default_factory=list, max_length=20)
    segments: list[Id] = Field(default_factory=list, max_length=100)
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    hours: list[int] = Field(default_factory=list, max_length=24)
    weekdays: list[int] = Field(default_factory=list, max_length=7)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[int]) -> list[int]:
        if any(not 0 <= h <= 23 for h in value):
            raise ValueError("hours are 0 to 23 (UTC)")
        return value

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if any(not 0 <= d <= 6 for d in value):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return value

    @model_validator(mode="after")
    def _window(self) -> Eligibility:
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end is not after start")
        return self

    def admits(
        self,
        *,
        locale: str | None,
        device: str | None,
        segment: str | None,
        at: datetime,
    ) -> bool:
        """Whether a request with this context may see the variant."""
        if self.locales and not (
            locale and any(locale == p or locale.startswith(p + "-") for p in self.locales)
        ):
            return False
        if self.devices and device not in self.devices:
            return False
        if self.segments and segment not in self.segments:
            return False
        if (self.start and at < self.start) or (self.end and at >= self.end):
            return False
        if self.hours and at.hour not in self.hours:
            return False
        return not (self.weekdays and at.weekday() not in self.weekdays)


class Variant(BaseModel):
    """One way to fill a slot: copy, a template, an image reference, a layout.

    Only `approved` variants are ever served. Generated copy starts `pending`.
    """

    model_config = ConfigDict(extra="forbid")

    id: Id
    text: str | None = Field(default=None, max_length=10_000, pattern=_NO_NUL)
    template: str | None = Field(default=None, max_length=65_536, pattern=_NO_NUL)
    image: str | None = Field(default=None, max_length=2_048, pattern=_NO_NUL)
    layout: Id | None = None
    metadata: dict[str, AttributeValue] = Field(default_factory=dict)
    eligibility: Eligibility = Field(default_factory=Eligibility)
    status: VariantStatus = "approved"
    source: Literal["manual", "generated"] = "manual"
    created_at: UtcDatetime | None = None

    def public(self) -> dict[str, Any]:
        """What a client receives about the chosen variant."""
        return self.model_dump(
            mode="json", include={"id", "text", "template", "image", "layout", "metadata"}
        )


def _thompson() -> dict[str, AttributeValue]:
    return {"name": "thompson"}


def _default_features() -> list[FeatureGroup]:
    return ["device", "time", "segment"]


class Slot(BaseModel):
    """A place in a product that a policy fills with one of its variants per request.

    Attributes:
        id: the slot's name, such as `home_hero` or `email_subject`.
        policy: the policy's config, such as `{"name": "linucb", "alpha": 0.5}` (checked
            by `penchant.content.slots`, which knows the policies).
        features: the context groups a contextual policy sees.
        reward: reward per outcome type that carries a decision_id back; dwell counts its
            value in seconds times the weight.
        reward_cap: the most one decision can earn, however many outcomes it gets.
        attribution_window_s: how long after a decision its outcomes still count.
    """

    model_config = ConfigDict(extra="forbid")

    id: Id
    description: str = Field(default="", max_length=2_000, pattern=_NO_NUL)
    policy: dict[str, AttributeValue] = Field(default_factory=_thompson, max_length=20)
    features: list[FeatureGroup] = Field(default_factory=_default_features)
    segments: list[Id] = Field(default_factory=list, max_length=32)
    reward: dict[str, float] = Field(default_factory=lambda: {"click": 1.0})
    reward_cap: float = Field(default=1.0, gt=0, le=1_000_000)
    attribution_window_s: int = Field(default=7 * 86_400, ge=60, le=365 * 86_400)
    created_at: UtcDatetime | None = None

    @field_validator("reward")
    @classmethod
    def _reward(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - REWARD_TYPES)
        if unknown:
            raise ValueError(
                f"{unknown[0]!r} cannot carry a reward; use {', '.join(sorted(REWARD_TYPES))}"
            )
        if not value or any(not (w >= 0 and w < 1e6) for w in value.values()):
            raise ValueError("give at least one outcome, each weight >= 0 and finite")
        return value

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a feature group is listed twice")
        return value
