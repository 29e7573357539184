"""Dependencies of the routes, as `Annotated` aliases: stores, serving, body and API key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from penchant.errors import Unauthorized
from penchant.privacy.keys import authenticate, require_scope
from penchant.schema import EventVocabulary
from penchant.service.serving import Online, ServedModels
from penchant.settings import Settings
from penchant.store import ApiKeyRecord, Store
from penchant.types import Scope


def get_store(request: Request) -> Store:
    """The store opened by the lifespan."""
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_vocabulary(request: Request) -> EventVocabulary:
    """The event types this deployment accepts."""
    vocabulary: EventVocabulary = request.app.state.vocabulary
    return vocabulary


async def read_body(request: Request) -> bytes:
    """The raw request body; routes validate it themselves, in one pass."""
    return await request.body()


def get_serving(request: Request) -> ServedModels:
    """The served models of every tenant."""
    serving: ServedModels = request.app.state.serving
    return serving


def get_online(request: Request) -> Online:
    """The online state (what people did since the models were trained)."""
    online: Online = request.app.state.online
    return online


StoreDep = Annotated[Store, Depends(get_store)]
ServingDep = Annotated[ServedModels, Depends(get_serving)]
OnlineDep = Annotated[Online, Depends(get_online)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
VocabularyDep = Annotated[EventVocabulary, Depends(get_vocabulary)]
BodyDep = Annotated[bytes, Depends(read_body)]
PartialQuery = Annotated[
    bool,
    Query(description="store the valid rows and list the rejected ones, instead of all or none"),
]

_bearer = HTTPBearer(
    auto_error=False, description="An API key, sent as `Authorization: Bearer pk_...`"
)


def get_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    store: StoreDep,
) -> ApiKeyRecord:
    """The record of the API key the request carries.

    Raises:
        Unauthorized: no bearer key, or one that is invalid or revoked.
    """
    if credentials is None:
        raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
    return authenticate(store.keys, credentials.credentials)


def scoped(scope: Scope) -> Callable[[ApiKeyRecord], ApiKeyRecord]:
    """A dependency giving the request's API key once it is known to have `scope`."""

    def dependency(key: Annotated[ApiKeyRecord, Depends(get_key)]) -> ApiKeyRecord:
        require_scope(key, scope)
        return key

    return dependency


EventsWriter = Annotated[ApiKeyRecord, Depends(scoped(Scope.EVENTS_WRITE))]
CatalogWriter = Annotated[ApiKeyRecord, Depends(scoped(Scope.CATALOG_WRITE))]
CatalogReader = Annotated[ApiKeyRecord, Depends(scoped(Scope.CATALOG_READ))]
RecsReader = Annotated[ApiKeyRecord, Depends(scoped(Scope.RECS_READ))]
