"""Consent per purpose, with the time it was given or withdrawn."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from penchant.schema.common import UtcDatetime, utcnow


class ConsentState(BaseModel):
    """A user's current answer for one purpose."""

    model_config = ConfigDict(extra="forbid")

    granted: bool
    at: UtcDatetime = Field(default_factory=utcnow)
    source: str | None = Field(default=None, max_length=256)
    version: str | None = Field(default=None, max_length=64)
