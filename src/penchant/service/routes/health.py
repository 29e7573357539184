"""Liveness, without authentication."""

from __future__ import annotations

from fastapi import APIRouter

from penchant import __version__
from penchant.service.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
async def health() -> HealthOut:
    """Answer while the service runs; needs no API key."""
    return HealthOut(status="ok", version=__version__)
