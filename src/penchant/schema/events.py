"""Events: what people did, with the context that links outcomes to what was shown."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from penchant.schema.common import AttributeValue, Id, as_utc, utcnow
from penchant.types import BUILTIN_EVENT_TYPES

#: Types whose `value` is required, and what it means.
VALUE_REQUIRED = {"rating": "the rating", "dwell": "seconds of dwell time"}


class EventVocabulary:
    """The event types a deployment accepts: the built-in ones plus custom ones from config."""

    def __init__(self, custom: Iterable[str] = ()) -> None:
        self.types: frozenset[str] = frozenset(BUILTIN_EVENT_TYPES) | frozenset(custom)

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def check(self, name: str) -> str:
        """Return the name if it is known, else raise ValueError naming the choices."""
        if name not in self.types:
            raise ValueError(
                f"unknown event type {name!r}; expected one of {', '.join(sorted(self.types))}"
            )
        return name


DEFAULT_VOCABULARY = EventVocabulary()


class EventContext(BaseModel):
    """Where and why an event happened. `request_id` ties an impression to later outcomes."""

    model_config = ConfigDict(extra="forbid")

    request_id: Id | None = None
    decision_id: Id | None = None
    surface: Id | None = None
    device: str | None = Field(default=None, max_length=64)
    position: int | None = Field(default=None, ge=0)
    locale: str | None = Field(default=None, max_length=35)
    propensity: float | None = Field(default=None, gt=0.0, le=1.0)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)


class Event(BaseModel):
    """One thing a user or an anonymous session did, optionally with an item.

    `event_id` is the idempotency key: the same id twice is stored once. Validate with
    `Event.model_validate(data, context={"vocabulary": EventVocabulary([...])})` to accept
    custom types.
    """

    model_config = ConfigDict(extra="forbid")

    event_id: Id | None = None
    user_id: Id | None = None
    session_id: Id | None = None
    item_id: Id | None = None
    type: str
    value: float | None = Field(default=None, allow_inf_nan=False)
    # Plain datetime: the model validator below makes it UTC, which saves a validator call
    # per event on the ingestion hot path.
    timestamp: datetime = Field(default_factory=utcnow)
    context: EventContext | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        vocabulary: Any = (info.context or {}).get("vocabulary", DEFAULT_VOCABULARY)
        return str(vocabulary.check(value))

    @model_validator(mode="after")
    def _who_and_what(self) -> Event:
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset():
            self.timestamp = as_utc(self.timestamp)
        if self.user_id is None and self.session_id is None:
            raise ValueError("an event needs a user_id or a session_id")
        if self.type in VALUE_REQUIRED and self.value is None:
            raise ValueError(f"a {self.type} event needs value ({VALUE_REQUIRED[self.type]})")
        if self.type == "dwell" and self.value is not None and self.value < 0:
            raise ValueError("dwell value must be >= 0 seconds")
        return self
