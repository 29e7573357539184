"""`AsyncClient`: the asyncio client of Penchant's HTTP API, with the methods of `Client`."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from penchant.client import _calls, _retry
from penchant.client._calls import Call, JsonObject, T
from penchant.client._client import DEFAULT_RETRIES
from penchant.client._errors import connection_error
from penchant.client._models import (
    Decision,
    EventsResult,
    Health,
    Recommendations,
    UpsertResult,
)

if TYPE_CHECKING:
    from penchant.schema import Event, Item, User


class AsyncClient:
    """An asyncio client of Penchant's HTTP API: `Client`'s methods, awaited.

    Use it as an async context manager, or `await close()`. Errors, retries and arguments
    are those of `Client`, whose methods document each call.

    Args:
        base_url: the service, e.g. `http://127.0.0.1:8000`.
        api_key: the API key, sent as `Authorization: Bearer <key>`; None sends none.
        timeout: seconds to wait to connect and for each read.
        transport: an httpx async transport, e.g. `httpx.MockTransport` in tests.
        retries: how many times an idempotent call is sent again; 0 never.

    Raises:
        ValueError: `base_url` is not an http(s) URL, or `retries` is negative.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = _retry.check_base_url(base_url)
        self.timeout = timeout
        self.retries = retries
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_retry.headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        await self._http.aclose()

    async def health(self) -> Health:
        """See `Client.health`."""
        return await self._send(_calls.health())

    async def send_events(
        self, events: Iterable[Event | JsonObject], *, partial: bool = False
    ) -> EventsResult:
        """See `Client.send_events`."""
        records = [_calls.record(event) for event in events]
        if not records:
            return EventsResult(stored=0)
        return await self._send(_calls.send_events(records, partial))

    async def upsert_items(
        self, items: Iterable[Item | JsonObject], *, partial: bool = False
    ) -> UpsertResult:
        """See `Client.upsert_items`."""
        records = [_calls.record(item) for item in items]
        return await self._send(_calls.upsert("items", records, partial))

    async def get_item(self, item_id: str) -> Item:
        """See `Client.get_item`."""
        return await self._send(_calls.get_item(item_id))

    async def delete_item(self, item_id: str) -> None:
        """See `Client.delete_item`."""
        await self._send(_calls.delete("items", item_id))

    async def upsert_users(
        self, users: Iterable[User | JsonObject], *, partial: bool = False
    ) -> UpsertResult:
        """See `Client.upsert_users`."""
        records = [_calls.record(user) for user in users]
        return await self._send(_calls.upsert("users", records, partial))

    async def get_user(self, user_id: str) -> User:
        """See `Client.get_user`."""
        return await self._send(_calls.get_user(user_id))

    async def delete_user(self, user_id: str) -> None:
        """See `Client.delete_user`."""
        await self._send(_calls.delete("users", user_id))

    async def recommend(
        self,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        k: int = 10,
        surface: str | None = None,
        context: JsonObject | None = None,
        filters: JsonObject | None = None,
        rules: Iterable[JsonObject] | None = None,
        exclude: Iterable[str] | None = None,
    ) -> Recommendations:
        """See `Client.recommend`."""
        call = _calls.recommend(user_id, session_id, k, surface, context, filters, rules, exclude)
        return await self._send(call)

    async def similar_items(
        self, item_id: str, *, k: int = 10, surface: str | None = None
    ) -> Recommendations:
        """See `Client.similar_items`."""
        return await self._send(_calls.similar_items(item_id, k, surface))

    async def session_recommendations(
        self,
        session_id: str,
        *,
        k: int = 10,
        surface: str | None = None,
        context: JsonObject | None = None,
    ) -> Recommendations:
        """See `Client.session_recommendations`."""
        return await self._send(_calls.session_recommendations(session_id, k, surface, context))

    async def put_slot(self, slot_id: str, slot: JsonObject) -> dict[str, object]:
        """See `Client.put_slot`."""
        return await self._send(_calls.put_slot(slot_id, slot))

    async def put_variant(
        self, slot_id: str, variant_id: str, variant: JsonObject
    ) -> dict[str, object]:
        """See `Client.put_variant`."""
        return await self._send(_calls.put_variant(slot_id, variant_id, variant))

    async def decide(
        self,
        slot: str,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        context: JsonObject | None = None,
    ) -> Decision:
        """See `Client.decide`."""
        return await self._send(_calls.decide(slot, user_id, session_id, context))

    async def put_experiment(self, experiment_id: str, experiment: JsonObject) -> dict[str, object]:
        """See `Client.put_experiment`."""
        return await self._send(_calls.put_experiment(experiment_id, experiment))

    async def start_experiment(self, experiment_id: str) -> dict[str, object]:
        """See `Client.start_experiment`."""
        return await self._send(_calls.experiment_action(experiment_id, "start"))

    async def stop_experiment(self, experiment_id: str) -> dict[str, object]:
        """See `Client.stop_experiment`."""
        return await self._send(_calls.experiment_action(experiment_id, "stop"))

    async def experiment_report(self, experiment_id: str, alpha: float = 0.05) -> dict[str, object]:
        """See `Client.experiment_report`."""
        return await self._send(_calls.experiment_report(experiment_id, alpha))

    async def _send(self, call: Call[T]) -> T:
        """Send a call, again while the retry policy allows, and read its answer."""
        for attempt in itertools.count():
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=call.body,
                    headers=_retry.request_headers(call),
                )
            except httpx.TransportError as exc:
                delay = _retry.delay_after_error(call, attempt, self.retries, exc)
                if delay is None:
                    raise connection_error(exc, self.base_url, self.timeout) from exc
            else:
                delay = _retry.delay_after_answer(call, attempt, self.retries, response)
                if delay is None:
                    return _retry.result(call, response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
