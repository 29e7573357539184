"""POST /v1/sessions: a session id the service signs, for clients with a public key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from penchant.privacy.sessions import issue_session
from penchant.service.deps import scoped
from penchant.service.schemas import ERROR_RESPONSES
from penchant.store import ApiKeyRecord
from penchant.types import Scope

router = APIRouter(tags=["sessions"], responses=ERROR_RESPONSES)
Reader = Annotated[ApiKeyRecord, Depends(scoped(Scope.RECS_READ))]


class SessionOut(BaseModel):
    """A new session."""

    session_id: str = Field(
        description="send it as session_id with events and recommendation requests"
    )


@router.post("/v1/sessions", response_model=SessionOut, status_code=201)
def new_session(key: Reader, request: Request) -> SessionOut:
    """Start an anonymous session. A public key may act only for sessions issued here."""
    return SessionOut(session_id=issue_session(request.app.state.hasher, key.tenant))
