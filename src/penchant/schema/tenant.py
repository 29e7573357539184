"""A tenant: one site, shop or app whose data never mixes with another's."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from penchant.schema.common import Id


class Tenant(BaseModel):
    """One site, shop or app. The embedded default deployment has one, `default`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    name: str | None = None
