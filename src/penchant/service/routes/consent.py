"""A person's consent per purpose, their controls, and "reset my profile".

- `GET|PUT /v1/users/{id}/consent`: the current answer per purpose and the ledger; a PUT
  appends answers (audited).
- `GET|POST /v1/users/{id}/controls`, `DELETE /v1/users/{id}/controls/{kind}/{value}`: the
  items ("not interested"), categories and providers (muted) a person asked not to see.
- `POST /v1/users/{id}/reset`: erase what was learned of a person, keeping them (audited).

Each change takes effect on the person's next request. Consent and controls belong with the
person's record, so they are written with `catalog:write` (the app's backend, which writes
`PUT /v1/users/{id}` too) and read with `catalog:read`; a browser-side key (`events:write`,
`public`) cannot change anyone's consent. A reset deletes events: `privacy:erase`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from penchant.errors import NotFound
from penchant.jobs import consent as jobs
from penchant.jobs.erase import reset_profile
from penchant.schema import ControlKind
from penchant.schema.common import Id
from penchant.service.deps import (
    CatalogReader,
    CatalogWriter,
    OnlineDep,
    PseudonymsDep,
    ServingDep,
    SettingsDep,
    StoreDep,
    scoped,
)
from penchant.service.routes.privacy import ErasureOut
from penchant.service.schemas import ERROR_RESPONSES, NOT_FOUND
from penchant.store import ApiKeyRecord, ConsentRecord, Control, Store
from penchant.types import Purpose, Scope

router = APIRouter(tags=["consent"], responses=ERROR_RESPONSES | NOT_FOUND)
Eraser = Annotated[ApiKeyRecord, Depends(scoped(Scope.PRIVACY_ERASE))]
#: A person's id as every record has it (no control characters): found by fuzzing, an id with
#: one reached the dismissal event `add_control` builds and failed there, a 500.
UserId = Annotated[
    str, Path(alias="id", min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class AnswerIn(BaseModel):
    """A person's answer for one purpose."""

    model_config = ConfigDict(extra="forbid")

    granted: bool
    # No control characters (found by fuzzing: a NUL was a 500 on PostgreSQL, whose text
    # columns cannot hold one, and stored on SQLite).
    version: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="the version of the text they answered",
    )
    source: str = Field(
        default="api",
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="where they answered: a banner, the settings page, an import...",
    )


class ConsentIn(BaseModel):
    """Answers to append to a person's consent ledger (purposes not named are unchanged)."""

    model_config = ConfigDict(extra="forbid")

    purposes: dict[Purpose, AnswerIn] = Field(min_length=1)


class PurposeOut(BaseModel):
    """A person's current answer for one purpose."""

    granted: bool
    recorded: bool = Field(description="false: never answered; `granted` is the default")
    version: str | None
    source: str | None
    at: datetime | None


class LedgerEntryOut(BaseModel):
    """One answer in the ledger."""

    purpose: Purpose
    granted: bool
    version: str
    source: str
    at: datetime


class ConsentOut(BaseModel):
    """A person's consent: the current answer for every purpose, and the ledger."""

    user_id: str
    purposes: dict[Purpose, PurposeOut]
    history: list[LedgerEntryOut] = Field(description="every answer recorded, oldest first")


class ControlIn(BaseModel):
    """Something to hide from a person's lists."""

    model_config = ConfigDict(extra="forbid")

    kind: ControlKind = Field(
        description='"item": not interested in it; "category" or "provider": mute it'
    )
    value: Id = Field(description="the item, category or provider id")


class ControlOut(BaseModel):
    """A control, with when it was first recorded."""

    kind: ControlKind
    value: str
    at: datetime | None

    @classmethod
    def of(cls, control: Control) -> ControlOut:
        """The answer for a stored control."""
        return cls(kind=control.kind, value=control.value, at=control.at)


class ControlsOut(BaseModel):
    """Everything a person asked not to see."""

    user_id: str
    controls: list[ControlOut]


@router.get("/v1/users/{id}/consent", response_model=ConsentOut)
def get_consent(
    key: CatalogReader,
    store: StoreDep,
    settings: SettingsDep,
    pseudonyms: PseudonymsDep,
    user_id: UserId,
) -> ConsentOut:
    """A person's current answer per purpose (the configured default where never asked) and
    their consent ledger."""
    stored = pseudonyms.user(key.tenant, user_id)
    return _consent(store, key.tenant, stored, user_id, jobs.default_granted(settings))


@router.put("/v1/users/{id}/consent", response_model=ConsentOut)
def put_consent(
    key: CatalogWriter,
    store: StoreDep,
    settings: SettingsDep,
    online: OnlineDep,
    pseudonyms: PseudonymsDep,
    user_id: UserId,
    body: ConsentIn,
) -> ConsentOut:
    """Record a person's answers; their next request honours them.

    Without personalization consent their lists are not personalized and their events
    train no model (from the next training); without analytics consent they are left out of
    engagement reports. The change is audited (who, whose hashed id, the outcome).
    """
    answers = [
        ConsentRecord(purpose=p, granted=a.granted, version=a.version, source=a.source)
        for p, a in body.purposes.items()
    ]
    stored = pseudonyms.user(key.tenant, user_id)
    jobs.change_consent(
        settings, store, online.state, stored, answers, tenant=key.tenant, actor=key.key_id
    )
    return _consent(store, key.tenant, stored, user_id, jobs.default_granted(settings))


def _consent(store: Store, tenant: str, stored: str, given: str, default: bool) -> ConsentOut:
    history = store.consent.history(tenant, stored)
    current = {r.purpose: r for r in history}  # the newest answer per purpose
    purposes = {}
    for purpose in Purpose:
        found = current.get(purpose)
        purposes[purpose] = PurposeOut(
            granted=default if found is None else found.granted,
            recorded=found is not None,
            version=None if found is None else found.version,
            source=None if found is None else found.source,
            at=None if found is None else found.at,
        )
    entries = [
        LedgerEntryOut(
            purpose=r.purpose, granted=r.granted, version=r.version, source=r.source, at=r.at
        )
        for r in history
        if r.at is not None
    ]
    return ConsentOut(user_id=given, purposes=purposes, history=entries)


@router.get("/v1/users/{id}/controls", response_model=ControlsOut)
def get_controls(
    key: CatalogReader, store: StoreDep, pseudonyms: PseudonymsDep, user_id: UserId
) -> ControlsOut:
    """What a person asked not to see, oldest first."""
    controls = store.consent.choices(key.tenant, pseudonyms.user(key.tenant, user_id)).controls
    return ControlsOut(user_id=user_id, controls=[ControlOut.of(c) for c in controls])


@router.post(
    "/v1/users/{id}/controls",
    response_model=ControlOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ControlOut, "description": "The control was already there"}},
)
def post_control(
    key: CatalogWriter,
    store: StoreDep,
    online: OnlineDep,
    pseudonyms: PseudonymsDep,
    user_id: UserId,
    body: ControlIn,
    response: Response,
) -> ControlOut:
    """Hide an item ("not interested"), a category or a provider from the person's lists,
    from their next request on: 201, or 200 when it was already hidden.

    "Not interested" is also stored as a `dismiss` event, a signal training learns from.
    """
    wanted = Control(kind=body.kind, value=body.value)
    stored = pseudonyms.user(key.tenant, user_id)
    added = jobs.add_control(store, online.state, key.tenant, stored, wanted)
    if added.dismissal is not None:
        online.record(key.tenant, [added.dismissal])
    if not added.created:
        response.status_code = status.HTTP_200_OK
    return ControlOut.of(added.control)


@router.delete("/v1/users/{id}/controls/{kind}/{value}", status_code=204, response_class=Response)
def delete_control(
    key: CatalogWriter,
    store: StoreDep,
    online: OnlineDep,
    pseudonyms: PseudonymsDep,
    user_id: UserId,
    kind: Annotated[ControlKind, Path()],
    value: Annotated[str, Path(min_length=1, max_length=256)],
) -> None:
    """Lift a control from the person's next request on. A "not interested" dismissal
    stays in their history, and keeps the item out of their personalized lists."""
    stored = pseudonyms.user(key.tenant, user_id)
    if not jobs.remove_control(store, online.state, key.tenant, stored, kind, value):
        raise NotFound("no such control", field="value")


@router.post("/v1/users/{id}/reset", response_model=ErasureOut)
async def reset_user(
    key: Eraser,
    store: StoreDep,
    settings: SettingsDep,
    serving: ServingDep,
    online: OnlineDep,
    pseudonyms: PseudonymsDep,
    user_id: UserId,
) -> ErasureOut:
    """Reset a person's profile: their events, online activity and rows in the models go at
    once, as in an erasure, but their record, consent and controls stay and their later
    events are accepted. Their next list is the one anyone new would get. Audited."""
    receipt = await run_in_threadpool(
        reset_profile,
        settings,
        store,
        online.state,
        pseudonyms.user(key.tenant, user_id),
        tenant=key.tenant,
        actor=key.key_id,
        served=serving.forget_user,
    )
    job = store.privacy.job(key.tenant, receipt.job_id)
    assert job is not None
    return ErasureOut.of(job)
