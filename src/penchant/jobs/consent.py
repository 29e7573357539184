"""Consent and user controls: changed here (by the service, and any CLI), each change stored,
mirrored into the online state for the next request, and consent changes audited."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from penchant.jobs.store import settings_hasher
from penchant.privacy.audit import AuditLog
from penchant.privacy.consent import WithoutConsent, mirror, without_consent
from penchant.schema import ControlKind, Event
from penchant.settings import Settings
from penchant.store import ConsentRecord, Control, Store
from penchant.store.state import StateStore
from penchant.types import Purpose

#: The audit action of a consent change.
CONSENT_ACTION = "user.consent"


def default_granted(settings: Settings) -> bool:
    """Whether a purpose a person never answered counts as granted (`privacy.consent_default`)."""
    return settings.privacy.consent_default == "granted"


def without_consent_to(
    settings: Settings, store: Store, tenant: str, purpose: Purpose
) -> WithoutConsent:
    """Who may not be used for a purpose: the ledger now, with the configured default."""
    return without_consent(store, tenant, purpose, default_granted=default_granted(settings))


def change_consent(
    settings: Settings,
    store: Store,
    state: StateStore,
    user_id: str,
    answers: Sequence[ConsentRecord],
    *,
    tenant: str,
    actor: str,
) -> None:
    """Append a person's answers to the ledger; the next request honours them.

    Args:
        settings: the deployment (its privacy secret keys the audit log's hashes).
        store: its store.
        state: its online state (the person's mirrored preferences).
        user_id: the person.
        answers: one answer per purpose, appended in order.
        tenant: the tenant.
        actor: who asked (an API key id, or `cli`); audited with the outcome.

    Raises:
        Erased: the person was erased.
    """
    audit = AuditLog(store.engine, settings_hasher(settings))
    target = audit.user(tenant, user_id)
    try:
        store.consent.record(tenant, user_id, answers)
        mirror(store, state, tenant, user_id)
    except Exception:
        audit.record(tenant, actor, CONSENT_ACTION, target, "failed")
        raise
    audit.record(tenant, actor, CONSENT_ACTION, target, "ok")


@dataclass(frozen=True)
class ControlAdded:
    """What `add_control` did.

    Attributes:
        control: the stored control (as first recorded, if it already was).
        created: whether it is new.
        dismissal: the `dismiss` event newly stored with an item control, to fold into the
            online state; None otherwise.
    """

    control: Control
    created: bool
    dismissal: Event | None


def add_control(
    store: Store, state: StateStore, tenant: str, user_id: str, control: Control
) -> ControlAdded:
    """Hide an item, a category or a provider from a person's lists from the next request.

    "Not interested" in an item is also stored as a `dismiss` event, the dismissal the
    pipeline and training already honour (once per person and item: its event id is
    derived from both).

    Raises:
        Erased: the person was erased.
    """
    stored, created = store.consent.add_control(tenant, user_id, control)
    event = None
    if control.kind is ControlKind.ITEM:
        event = Event(
            event_id=_dismissal_id(user_id, control.value),
            user_id=user_id,
            item_id=control.value,
            type="dismiss",
        )
        if not store.events.append(tenant, [event]).stored:
            event = None
    mirror(store, state, tenant, user_id)
    return ControlAdded(stored, created, event)


def remove_control(
    store: Store, state: StateStore, tenant: str, user_id: str, kind: ControlKind, value: str
) -> bool:
    """Lift a control from the next request; True if it existed.

    A dismissal stored with an item control stays in the person's history (as any event),
    so the item stays out of their personalized lists until a profile reset.
    """
    removed = store.consent.remove_control(tenant, user_id, kind, value)
    if removed:
        mirror(store, state, tenant, user_id)
    return removed


def _dismissal_id(user_id: str, item_id: str) -> str:
    digest = hashlib.blake2b(f"{user_id}\0{item_id}".encode(), digest_size=16).hexdigest()
    return f"not-interested-{digest}"
