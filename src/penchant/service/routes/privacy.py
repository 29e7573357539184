"""DELETE /v1/users/{id} (erasure, GDPR Art. 17) and GET /v1/erasures/{id} (its status)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from penchant.errors import NotFound
from penchant.jobs.erase import erase
from penchant.service.deps import (
    OnlineDep,
    PseudonymsDep,
    ServingDep,
    SettingsDep,
    StoreDep,
    scoped,
)
from penchant.service.schemas import ERROR_RESPONSES, NOT_FOUND
from penchant.store import ApiKeyRecord, ErasureRecord
from penchant.types import Scope

router = APIRouter(tags=["privacy"], responses=ERROR_RESPONSES)
Eraser = Annotated[ApiKeyRecord, Depends(scoped(Scope.PRIVACY_ERASE))]
PathId = Annotated[str, Path(alias="id", min_length=1, max_length=256)]


class ErasureOut(BaseModel):
    """An erasure job: what went at once, and whether its retraining is served yet."""

    job_id: str
    status: str = Field(description="erased (at once) or rebuilt (the retraining is served)")
    counts: dict[str, int] = Field(description="what each place removed")
    requested_at: datetime
    erased_at: datetime | None
    rebuild_due_at: datetime | None = Field(
        description="when the retraining of item-side structures is due at the latest"
    )
    rebuilt_at: datetime | None
    rebuilt_version: str | None

    @classmethod
    def of(cls, job: ErasureRecord) -> ErasureOut:
        """The answer for a stored job."""
        return cls(
            job_id=job.job_id,
            status="rebuilt" if job.rebuilt_at is not None else "erased",
            counts=job.counts,
            requested_at=job.requested_at,
            erased_at=job.erased_at,
            rebuild_due_at=job.rebuild_due_at,
            rebuilt_at=job.rebuilt_at,
            rebuilt_version=job.rebuilt_version,
        )


@router.delete("/v1/users/{id}", response_model=ErasureOut, responses=NOT_FOUND)
async def erase_user(
    key: Eraser,
    store: StoreDep,
    settings: SettingsDep,
    serving: ServingDep,
    online: OnlineDep,
    pseudonyms: PseudonymsDep,
    user_id: PathId,
) -> ErasureOut:
    """Erase a person: their events, profile, consent history, online state and model rows
    go at once, and a retraining rebuilds item-side structures before `rebuild_due_at`.
    Later events for the id are refused. An id with no data is erased all the same."""
    receipt = await run_in_threadpool(
        erase,
        settings,
        store,
        online.state,
        pseudonyms.user(key.tenant, user_id),
        tenant=key.tenant,
        actor=key.key_id,
        served=serving.forget_user,
    )
    return _job(store, key.tenant, receipt.job_id)


@router.get("/v1/erasures/{id}", response_model=ErasureOut, responses=NOT_FOUND)
def get_erasure(key: Eraser, store: StoreDep, job_id: PathId) -> ErasureOut:
    """The status of an erasure job of the key's tenant."""
    return _job(store, key.tenant, job_id)


def _job(store: StoreDep, tenant: str, job_id: str) -> ErasureOut:
    job = store.privacy.job(tenant, job_id)
    if job is None:
        raise NotFound("no such erasure job", field="id")
    return ErasureOut.of(job)
