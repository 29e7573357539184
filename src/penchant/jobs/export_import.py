"""Import a person's export (`penchant-export/1`) into an instance, for data portability.

What was stored is imported: events (with their ids, times, sessions, values and contexts),
the profile, the consent ledger and the controls. What was derived (online state, inferred
interests, model rows) is not: the instance derives its own from the imported events.
Importing the same export again stores nothing new, except events without an `event_id`,
which have no idempotency key. Given the instance's online state, an import mirrors the
person's consent and controls into it (`penchant.privacy.consent.mirror`), as a change through
the API does, so serving honours them from the next request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from penchant.errors import Erased, InvalidInput
from penchant.jobs.export import BATCH, EXPORT_FORMAT
from penchant.jobs.store import settings_hasher, settings_pseudonyms
from penchant.privacy.audit import AuditLog
from penchant.privacy.consent import mirror
from penchant.schema import ControlKind, Event, EventVocabulary, User
from penchant.schema.common import Id, UtcDatetime, to_micros
from penchant.settings import Settings
from penchant.store import ConsentRecord, Control, Store
from penchant.store.state import StateStore
from penchant.types import Purpose

#: The audit action of an import.
IMPORT_ACTION = "user.import"


class _Consent(BaseModel):
    purpose: Purpose
    granted: bool
    version: str = Field(max_length=64)
    source: str = Field(max_length=256)
    at: UtcDatetime


class _ConsentPart(BaseModel):
    history: list[_Consent] = Field(default_factory=list)


class _Control(BaseModel):
    kind: ControlKind
    value: Id
    at: UtcDatetime


class _Export(BaseModel):
    """The parts of an export that import reads; the derived parts are ignored."""

    model_config = ConfigDict(extra="ignore")

    format: str  # checked against EXPORT_FORMAT before validation
    user_id: Id
    profile: User | None = None
    consent: _ConsentPart = Field(default_factory=_ConsentPart)
    controls: list[_Control] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


@dataclass(frozen=True)
class ExportImport:
    """What importing an export did.

    Attributes:
        user_id: the person.
        events: events in the export.
        stored: events newly stored.
        duplicates: events already stored (same `event_id`), not stored again.
        profile: whether a profile was written.
        consents: consent ledger entries added.
        controls: controls added.
    """

    user_id: str
    events: int
    stored: int
    duplicates: int
    profile: bool
    consents: int
    controls: int


def read_export(path: Path) -> dict[str, Any]:
    """Read an export file.

    Raises:
        InvalidInput: no such file, or it is not a JSON object.
    """
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path.name}: not a Penchant export (expected a JSON object)")
    return data


def import_export(
    settings: Settings,
    store: Store,
    export: Mapping[str, Any],
    *,
    tenant: str | None = None,
    actor: str = "cli",
    state: StateStore | None = None,
) -> ExportImport:
    """Store a person's export into a tenant: profile, consent ledger, controls, events.

    The whole export is validated before anything is written; events are written in the
    order of the export (their stored order at the source), a batch at a time.

    Args:
        settings: the deployment (custom event types, the audit log's keyed hash).
        store: the store to write to.
        export: the parsed export (`read_export`).
        tenant: the tenant to import into; default the settings' (not the export's: the
            person may move between deployments and tenants).
        actor: who asks (recorded in the audit log).
        state: the instance's online state, into which the person's consent and controls
            are mirrored after they are written; None leaves the state alone (a serving
            instance then honours the imported choices from its next full mirror, or the
            person's next change).

    Raises:
        InvalidInput: not a `penchant-export/1` document, an invalid field, or an event or
            profile of someone other than the export's person.
        Erased: the person was erased in this tenant (reinstate them first).
    """
    tenant = tenant or settings.tenant
    parsed = _parse(export, EventVocabulary(settings.events.custom_types))
    known_as = parsed.user_id
    pseudonyms = settings_pseudonyms(settings)
    if pseudonyms.enabled:
        parsed = _pseudonymized(parsed, pseudonyms.user(tenant, known_as))
    user_id = parsed.user_id
    if store.privacy.is_erased(tenant, [user_id]):
        raise Erased(
            "this user id was erased here; lift its tombstone with 'penchant privacy "
            "reinstate' before importing",
            field="user_id",
        )
    audit = AuditLog(store.engine, settings_hasher(settings))
    target = audit.user(tenant, user_id)
    try:
        result = dataclasses.replace(_store(store, tenant, parsed), user_id=known_as)
        if state is not None:
            mirror(store, state, tenant, user_id)
    except Exception:
        audit.record(tenant, actor, IMPORT_ACTION, target, "failed")
        raise
    audit.record(tenant, actor, IMPORT_ACTION, target, "ok")
    return result


def _parse(export: Mapping[str, Any], vocabulary: EventVocabulary) -> _Export:
    if export.get("format") != EXPORT_FORMAT:
        raise InvalidInput(
            f"not a Penchant export: format {export.get('format')!r}, expected {EXPORT_FORMAT!r}",
            field="format",
        )
    try:
        parsed = _Export.model_validate(export, context={"vocabulary": vocabulary})
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "export"
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from None
    if parsed.profile is not None and parsed.profile.id != parsed.user_id:
        raise InvalidInput("the profile is not the export's person", field="profile.id")
    for n, event in enumerate(parsed.events):
        if event.user_id != parsed.user_id:
            raise InvalidInput(
                "an event of someone other than the export's person", field=f"events.{n}.user_id"
            )
    return parsed


def _pseudonymized(parsed: _Export, stored: str) -> _Export:
    """The export with the person under the id this instance stores for them."""
    profile = None if parsed.profile is None else parsed.profile.model_copy(update={"id": stored})
    events = [e.model_copy(update={"user_id": stored}) for e in parsed.events]
    return parsed.model_copy(update={"user_id": stored, "profile": profile, "events": events})


def _store(store: Store, tenant: str, parsed: _Export) -> ExportImport:
    user_id = parsed.user_id
    if parsed.profile is not None:
        store.catalog.upsert_users(tenant, [parsed.profile])
    consents = _record_consents(store, tenant, user_id, parsed.consent.history)
    controls = sum(
        store.consent.add_control(tenant, user_id, Control(c.kind, c.value, c.at))[1]
        for c in parsed.controls
    )
    stored = duplicates = 0
    for start in range(0, len(parsed.events), BATCH):
        ack = store.events.append(tenant, parsed.events[start : start + BATCH])
        stored += ack.stored
        duplicates += len(ack.duplicates)
    return ExportImport(
        user_id=user_id,
        events=len(parsed.events),
        stored=stored,
        duplicates=duplicates,
        profile=parsed.profile is not None,
        consents=consents,
        controls=controls,
    )


def _record_consents(store: Store, tenant: str, user_id: str, history: list[_Consent]) -> int:
    """Append the ledger entries the person does not have yet, with their original times;
    return how many.

    An entry equal to a stored one (same purpose, answer, version, source and time) is not
    appended again, so importing the same export twice leaves one copy of its history.
    """
    stored = {_key(r) for r in store.consent.history(tenant, user_id)}
    new: list[ConsentRecord] = []
    for c in history:
        record = ConsentRecord(c.purpose, c.granted, c.version, c.source, c.at)
        if _key(record) not in stored:
            stored.add(_key(record))
            new.append(record)
    store.consent.record(tenant, user_id, new)
    return len(new)


def _key(record: ConsentRecord) -> tuple[str, bool, str, str, int | None]:
    at = None if record.at is None else to_micros(record.at)
    return (str(record.purpose), record.granted, record.version, record.source, at)
