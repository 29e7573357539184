"""A typed Python client of Penchant's HTTP API, blocking (`Client`) and asyncio (`AsyncClient`).

    from penchant.client import Client

    with Client("http://127.0.0.1:8000", api_key) as penchant:
        penchant.send_events([{"event_id": "e1", "user_id": "u1", "item_id": "i1",
                               "type": "click"}])
        recs = penchant.recommend("u1", k=5)

It imports only httpx, pydantic and orjson, never the service, so it stays light to import.
"""

from penchant.client._async import AsyncClient
from penchant.client._client import Client
from penchant.client._errors import ApiError, ConnectionFailed, ServiceUnavailable
from penchant.client._models import (
    Decision,
    EventsResult,
    Health,
    Recommendations,
    RecommendedItem,
    RowError,
    UpsertResult,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "Decision",
    "EventsResult",
    "Health",
    "Recommendations",
    "RecommendedItem",
    "RowError",
    "ServiceUnavailable",
    "UpsertResult",
]
