"""Shared vocabulary: id aliases, the event-type vocabulary and the consent purposes."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

TenantId = str
UserId = str
ItemId = str
SessionId = str

#: Event types every deployment understands; more can be declared in config.
BUILTIN_EVENT_TYPES: Final[tuple[str, ...]] = (
    "impression",
    "view",
    "click",
    "like",
    "dislike",
    "rating",
    "add_to_cart",
    "purchase",
    "share",
    "dwell",
    "skip",
    "dismiss",
    "conversion",
)


class Purpose(StrEnum):
    """Purposes a user can consent to, each separately."""

    PERSONALIZATION = "personalization"
    ANALYTICS = "analytics"
    ADVERTISING = "advertising"


class Scope(StrEnum):
    """What an API key may do."""

    EVENTS_WRITE = "events:write"
    RECS_READ = "recs:read"
    CATALOG_WRITE = "catalog:write"
    CATALOG_READ = "catalog:read"
    ADMIN = "admin"
