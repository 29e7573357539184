"""Dependencies of the routes, as `Annotated` aliases: stores, serving, body and API key.

Those that only read `app.state` are coroutines: FastAPI runs a plain function dependency
in a worker thread, a hand-off that cost a quarter of a millisecond per dependency per
request in a measurement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from penchant.errors import Forbidden, Unauthorized
from penchant.privacy.keys import CachedKeys, authenticate, is_public, require_scope
from penchant.privacy.pseudonyms import Pseudonyms
from penchant.privacy.sessions import is_issued
from penchant.schema import EventVocabulary
from penchant.service.serving import Online, ServedModels
from penchant.settings import Settings
from penchant.store import ApiKeyRecord, Store
from penchant.types import Scope


async def get_store(request: Request) -> Store:
    """The store opened by the lifespan."""
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_vocabulary(request: Request) -> EventVocabulary:
    """The event types this deployment accepts."""
    vocabulary: EventVocabulary = request.app.state.vocabulary
    return vocabulary


async def read_body(request: Request) -> bytes:
    """The raw request body; routes validate it themselves, in one pass."""
    return await request.body()


async def get_serving(request: Request) -> ServedModels:
    """The served models of every tenant."""
    serving: ServedModels = request.app.state.serving
    return serving


async def get_pseudonyms(request: Request) -> Pseudonyms:
    """How people's ids are stored (as given, or as keyed hashes)."""
    pseudonyms: Pseudonyms = request.app.state.pseudonyms
    return pseudonyms


async def get_online(request: Request) -> Online:
    """The online state (what people did since the models were trained)."""
    online: Online = request.app.state.online
    return online


StoreDep = Annotated[Store, Depends(get_store)]
ServingDep = Annotated[ServedModels, Depends(get_serving)]
OnlineDep = Annotated[Online, Depends(get_online)]
PseudonymsDep = Annotated[Pseudonyms, Depends(get_pseudonyms)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
VocabularyDep = Annotated[EventVocabulary, Depends(get_vocabulary)]
BodyDep = Annotated[bytes, Depends(read_body)]
PartialQuery = Annotated[
    bool,
    Query(description="store the valid rows and list the rejected ones, instead of all or none"),
]

_NO_KEY = "an API key is required: send Authorization: Bearer <key>"
#: The `openapi_extra` of routes that call `authorize` themselves instead of a dependency.
BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


_bearer = HTTPBearer(
    auto_error=False, description="An API key, sent as `Authorization: Bearer pk_...`"
)


async def get_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> ApiKeyRecord:
    """The record of the API key the request carries.

    A key looked up in the last `service.key_cache_s` seconds is checked without a database
    query (and without leaving the event loop); otherwise the lookup runs in a thread.

    Raises:
        Unauthorized: no bearer key, or one that is invalid or revoked.
    """
    if credentials is None:
        raise Unauthorized(_NO_KEY)
    return await _record(request, credentials.credentials)


async def authorize(request: Request, scope: Scope) -> ApiKeyRecord:
    """The request's API key, checked for `scope`: what `scoped(scope)` gives, for the hot
    routes that skip FastAPI's dependency resolution (a third of their own cost).

    Raises:
        Unauthorized: no bearer key, or one that is invalid or revoked.
        Forbidden: the key lacks the scope.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(_NO_KEY)
    key = await _record(request, token.strip())
    require_scope(key, scope)
    return key


async def _record(request: Request, token: str) -> ApiKeyRecord:
    keys: CachedKeys = request.app.state.keys
    if keys.cached(token):
        record = authenticate(keys, token)
    else:
        record = await run_in_threadpool(authenticate, keys, token)
    request.app.state.limiter.take(record.key_id)
    return record


def scoped(scope: Scope) -> Callable[[ApiKeyRecord], Awaitable[ApiKeyRecord]]:
    """A dependency giving the request's API key once it is known to have `scope`."""

    async def dependency(key: Annotated[ApiKeyRecord, Depends(get_key)]) -> ApiKeyRecord:
        require_scope(key, scope)
        return key

    return dependency


EventsWriter = Annotated[ApiKeyRecord, Depends(scoped(Scope.EVENTS_WRITE))]
CatalogWriter = Annotated[ApiKeyRecord, Depends(scoped(Scope.CATALOG_WRITE))]
CatalogReader = Annotated[ApiKeyRecord, Depends(scoped(Scope.CATALOG_READ))]
RecsReader = Annotated[ApiKeyRecord, Depends(scoped(Scope.RECS_READ))]
ExperimentsAdmin = Annotated[ApiKeyRecord, Depends(scoped(Scope.EXPERIMENTS_ADMIN))]


def own_session_only(
    request: Request, key: ApiKeyRecord, user_id: str | None, session_id: str | None
) -> None:
    """Hold a public client key to sessions the service issued it (POST /v1/sessions).

    Raises:
        Forbidden: a public key names a user, or a session id the service did not issue.
    """
    if not is_public(key):
        return
    if user_id is not None:
        raise Forbidden(
            "a public key acts only for its own session: send session_id, not user_id",
            field="user_id",
        )
    if session_id is not None and not is_issued(request.app.state.hasher, key.tenant, session_id):
        raise Forbidden(
            "a public key may only use a session id issued by POST /v1/sessions",
            field="session_id",
        )
