"""Catalog records: items and users."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from penchant.schema.common import AttributeValue, Id, UtcDatetime
from penchant.schema.consent import ConsentState
from penchant.types import Purpose


class Item(BaseModel):
    """Something that can be recommended: an article, a product, a post, a lesson."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    # No NUL character: a PostgreSQL text column cannot hold one, and every store must answer
    # the same (found by fuzzing: a NUL in a title was a 500 on PostgreSQL only).
    title: str | None = Field(default=None, max_length=1_000, pattern=r"^[^\x00]*$")
    text: str | None = Field(default=None, max_length=100_000, pattern=r"^[^\x00]*$")
    categories: list[Id] = Field(default_factory=list, max_length=100)
    tags: list[Id] = Field(default_factory=list, max_length=200)
    provider: Id | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    published_at: UtcDatetime | None = None
    expires_at: UtcDatetime | None = None
    available: bool = True

    @model_validator(mode="after")
    def _dates_in_order(self) -> Item:
        if self.published_at and self.expires_at and self.expires_at < self.published_at:
            raise ValueError("expires_at is before published_at")
        return self


class User(BaseModel):
    """A known person, with their attributes and consent per purpose."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    consent: dict[Purpose, ConsentState] = Field(default_factory=dict)
