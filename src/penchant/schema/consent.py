"""Consent per purpose, with the time it was given or withdrawn, and what a person asked not
to see (their controls)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from penchant.schema.common import UtcDatetime, utcnow


class ConsentState(BaseModel):
    """A user's current answer for one purpose."""

    model_config = ConfigDict(extra="forbid")

    granted: bool
    at: UtcDatetime = Field(default_factory=utcnow)
    source: str | None = Field(default=None, max_length=256)
    version: str | None = Field(default=None, max_length=64)


class ControlKind(StrEnum):
    """What a user control hides from a person's lists."""

    ITEM = "item"  # "not interested" in one item
    CATEGORY = "category"  # every item of a category (muted)
    PROVIDER = "provider"  # every item of a provider (muted)
