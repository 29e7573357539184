"""The data model: Tenant, User, Item, Event and Consent (pydantic v2)."""

from penchant.schema.catalog import Item, User
from penchant.schema.consent import ConsentState
from penchant.schema.events import Event, EventContext, EventVocabulary
from penchant.schema.tenant import Tenant

__all__ = [
    "ConsentState",
    "Event",
    "EventContext",
    "EventVocabulary",
    "Item",
    "Tenant",
    "User",
]
