"""GET /v1/users/{id}/export: everything stored and inferred about a person (GDPR Art. 15, 20)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Response

from penchant.errors import Unavailable
from penchant.jobs.export import EXPORT_FORMAT, export_filename, export_user
from penchant.ranking import Engine
from penchant.service.deps import (
    OnlineDep,
    PseudonymsDep,
    ServingDep,
    SettingsDep,
    StoreDep,
    scoped,
)
from penchant.service.schemas import ERROR_RESPONSES, NOT_FOUND
from penchant.store import ApiKeyRecord
from penchant.types import Scope

router = APIRouter(tags=["privacy"], responses=ERROR_RESPONSES)
Exporter = Annotated[ApiKeyRecord, Depends(scoped(Scope.PRIVACY_EXPORT))]
PathId = Annotated[str, Path(alias="id", min_length=1, max_length=256)]

_EXPORT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            f"A `{EXPORT_FORMAT}` JSON document: `profile`, `consent` (`current`, `history`), "
            "`controls`, `events` (as POST /v1/events accepts them), `online_state`, "
            "`inferred` (top categories and providers, segments, model rows, bandit "
            "contexts) and how to erase it all; `penchant privacy import` stores it elsewhere"
        ),
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    **NOT_FOUND,
}


@router.get("/v1/users/{id}/export", response_class=Response, responses=_EXPORT)
def export(
    key: Exporter,
    store: StoreDep,
    settings: SettingsDep,
    serving: ServingDep,
    online: OnlineDep,
    pseudonyms: PseudonymsDep,
    user_id: PathId,
) -> Response:
    """Export everything stored about a person and what was inferred from it, as a JSON
    attachment. 404 when nothing is stored about the id in the key's tenant (also after an
    erasure). Every export is recorded in the audit log, without its content."""
    data = export_user(
        settings,
        store,
        online.state,
        key.tenant,
        pseudonyms.user(key.tenant, user_id),
        _engine(serving, key.tenant),
        actor=key.key_id,
        load_active=False,
        known_as=user_id,
    )
    name = export_filename(settings, key.tenant, user_id)
    return Response(
        orjson.dumps(data),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _engine(serving: ServingDep, tenant: str) -> Engine | None:
    """The tenant's served engine, or None when no model is active yet."""
    try:
        return serving.of(tenant).engine()
    except Unavailable:
        return None
