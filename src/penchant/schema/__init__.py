"""The data model: Tenant, User, Item, Event and Consent (pydantic v2)."""

from penchant.schema.catalog import Item, User
from penchant.schema.consent import ConsentState, ControlKind
from penchant.schema.events import Event, EventContext, EventVocabulary
from penchant.schema.tenant import Tenant

__all__ = [
    "ConsentState",
    "ControlKind",
    "Event",
    "EventContext",
    "EventVocabulary",
    "Item",
    "Tenant",
    "User",
]
