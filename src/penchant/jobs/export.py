"""A person's export (GDPR Art. 15 and 20): everything stored about them and what was inferred.

The export is one JSON document (`EXPORT_FORMAT`); `penchant.jobs.export_import` stores its
events, profile, consent ledger and controls into another instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from penchant.errors import InvalidInput, NotFound
from penchant.jobs.inferred import Interests, model_rows, segments
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import settings_hasher
from penchant.models.base import Recommender
from penchant.privacy.audit import AuditLog
from penchant.ranking import Engine, OnlineState
from penchant.schema import Event, User
from penchant.settings import Settings
from penchant.store import ConsentRecord, EventFilter, Store
from penchant.store.state import StateStore

#: The `format` of every export this version writes.
EXPORT_FORMAT = "penchant-export/1"
#: The audit action of an export.
EXPORT_ACTION = "user.export"
#: Events read from the store per batch.
BATCH = 10_000

_NOTHING = "no data is stored about this user id"
_BANDITS = (
    "no bandit policy keeps per-person state in this version; when one does, its contexts "
    "for this person are listed here"
)
_ERASURE = (
    "Erase everything listed here with DELETE /v1/users/{id} (or `penchant privacy erase`). "
    "Events, profile, consent ledger, controls, online state and model rows go at once; "
    "item-side model structures are rebuilt by a retraining within the erasure's deadline."
)


def export_user(
    settings: Settings,
    store: Store,
    state: StateStore,
    tenant: str,
    user_id: str,
    engine: Engine | None = None,
    *,
    actor: str = "cli",
    load_active: bool = True,
    known_as: str | None = None,
) -> dict[str, Any]:
    """Everything Penchant holds about a person, as JSON-ready data.

    Events are read from the store in batches and turned into their JSON form as they come,
    so only the JSON the export holds is kept in memory. Every call is audited (the id only
    as a keyed hash, never the payload).

    Args:
        settings: the deployment.
        store: its store.
        state: its online state.
        tenant: the person's tenant.
        user_id: the person.
        engine: the served engine, whose models are reported; None reads the active model
            version from disk when `load_active`, else reports no model.
        actor: who asks (an API key id, or `cli`).
        load_active: with no engine, load the tenant's active model version to report it.
        known_as: the id the person's app uses, shown in the export in place of `user_id`
            (the pseudonym Penchant stores, when ids are pseudonymized).

    Returns:
        `format`, `tenant`, `user_id`, `exported_at`, `profile` (or None), `consent`
        (`current` per purpose, `history` oldest first), `controls`, `events` (in the form
        `POST /v1/events` accepts, in stored order), `online_state`, `inferred` and
        `erasure` (how to erase it all).

    Raises:
        InvalidInput: an empty user id.
        NotFound: nothing is stored about the id, or it was erased (the same answer, so an
            export does not tell whether an id was ever erased).
    """
    if not user_id:
        raise InvalidInput("user_id must not be empty", field="user_id")
    audit = AuditLog(store.engine, settings_hasher(settings))
    target = audit.user(tenant, user_id)
    try:
        export = _collect(settings, store, state, tenant, user_id, engine, load_active)
        if known_as is not None and known_as != user_id:
            _rename(export, known_as)
    except NotFound:
        audit.record(tenant, actor, EXPORT_ACTION, target, "not_found")
        raise
    except Exception:
        audit.record(tenant, actor, EXPORT_ACTION, target, "failed")
        raise
    audit.record(tenant, actor, EXPORT_ACTION, target, "ok")
    return export


def _collect(
    settings: Settings,
    store: Store,
    state: StateStore,
    tenant: str,
    user_id: str,
    engine: Engine | None,
    load_active: bool,
) -> dict[str, Any]:
    if store.privacy.is_erased(tenant, [user_id]):
        raise NotFound(_NOTHING, field="id")
    profile = store.catalog.get_user(tenant, user_id)
    history = store.consent.history(tenant, user_id)
    # by kind and value, so an export's controls read the same after an import
    controls = sorted(
        store.consent.choices(tenant, user_id).controls, key=lambda c: (c.kind, c.value)
    )
    online = OnlineState(state, tenant, keep=settings.serving.recent_items).user(user_id)
    version, models = _served(settings, tenant, engine, load_active)
    model = model_rows(version, models, user_id)
    interests = Interests()
    events: list[dict[str, Any]] = []
    for batch in store.events.scan(tenant, EventFilter(user_id=user_id), batch_size=BATCH):
        interests.add(batch)
        events.extend(event_json(e) for e in batch)
    activity = {
        "recent": online.recent,
        "purchased": online.purchased,
        "dismissed": online.dismissed,
    }
    held = [profile is not None, history, controls, events, *activity.values(), model["known"]]
    if not any(held):
        raise NotFound(_NOTHING, field="id")
    return {
        "format": EXPORT_FORMAT,
        "tenant": tenant,
        "user_id": user_id,
        "exported_at": iso(datetime.now(UTC)),
        "profile": None if profile is None else profile.model_dump(mode="json"),
        "consent": {"current": _current(profile, history), "history": [_entry(c) for c in history]},
        "controls": [
            {"kind": str(c.kind), "value": c.value, "at": _stored_at(c.at)} for c in controls
        ],
        "events": events,
        "online_state": activity,
        "inferred": {
            **interests.summary(store.catalog, tenant),
            "segments": segments(profile),
            "model": model,
            "bandit_contexts": [],
            "notes": {"bandit_contexts": _BANDITS},
        },
        "erasure": _ERASURE,
    }


def _rename(export: dict[str, Any], known_as: str) -> None:
    """Show the person under the id their app uses, wherever the export names them."""
    export["user_id"] = known_as
    if export["profile"] is not None:
        export["profile"]["id"] = known_as
    for event in export["events"]:
        if event["user_id"] is not None:
            event["user_id"] = known_as


def _served(
    settings: Settings, tenant: str, engine: Engine | None, load_active: bool
) -> tuple[str | None, Mapping[str, Recommender]]:
    """The version and models to report: the engine's, else the active version's, if any."""
    if engine is not None:
        return engine.version, engine.serving.models
    if not load_active:
        return None, {}
    try:
        bundle = ModelRegistry(settings.data_dir / "models", tenant).load()
    except (NotFound, InvalidInput):
        return None, {}
    return bundle.version, bundle.models


def _current(profile: User | None, history: list[ConsentRecord]) -> dict[str, Any]:
    """The current answer per purpose: the newest ledger entry, else the profile's consent."""
    current: dict[str, Any] = {}
    if profile is not None:
        for purpose, answer in profile.consent.items():
            current[str(purpose)] = answer.model_dump(mode="json")
    for entry in history:  # oldest first: the newest wins
        current[str(entry.purpose)] = {
            "granted": entry.granted,
            "at": _stored_at(entry.at),
            "source": entry.source,
            "version": entry.version,
        }
    return current


def _entry(entry: ConsentRecord) -> dict[str, Any]:
    return {
        "purpose": str(entry.purpose),
        "granted": entry.granted,
        "version": entry.version,
        "source": entry.source,
        "at": _stored_at(entry.at),
    }


def _stored_at(moment: datetime | None) -> str:
    """The time of a stored consent answer or control (the store always sets it)."""
    assert moment is not None, "the store reads back every row with its time"
    return iso(moment)


def event_json(event: Event) -> dict[str, Any]:
    """An event in the JSON form `POST /v1/events` accepts (its context without unset fields)."""
    context = event.context
    return {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "session_id": event.session_id,
        "item_id": event.item_id,
        "type": event.type,
        "value": event.value,
        "timestamp": iso(event.timestamp),
        "context": None
        if context is None
        else context.model_dump(mode="json", exclude_defaults=True),
    }


def iso(moment: datetime) -> str:
    """A UTC time as the API writes it: ISO 8601 with a `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_filename(settings: Settings, tenant: str, user_id: str) -> str:
    """A file name for a person's export that does not show their id: `export-<hash>.json`."""
    digest = settings_hasher(settings).id(tenant, user_id, purpose="export")[:16]
    return f"export-{digest}.json"
