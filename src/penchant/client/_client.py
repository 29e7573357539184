"""`Client`: the blocking client of Penchant's HTTP API."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from penchant.client import _calls, _retry
from penchant.client._calls import Call, JsonObject, T
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

#: Sends of an idempotent call after its first, on a connection failure or a 503.
DEFAULT_RETRIES = 2


class Client:
    """A blocking client of Penchant's HTTP API; use it as a context manager, or `close()` it.

    Calls raise `ApiError` for every non-2xx answer and `ConnectionFailed` when no answer
    comes. Idempotent calls (GETs, and event batches whose events all carry an `event_id`)
    are sent again after a connection failure or a 503, with a short backoff; no call is
    sent again after a 4xx.

    Args:
        base_url: the service, e.g. `http://127.0.0.1:8000`.
        api_key: the API key, sent as `Authorization: Bearer <key>`; None sends none (only
            `health()` works without one).
        timeout: seconds to wait to connect and for each read.
        transport: an httpx transport, e.g. `httpx.MockTransport` in tests.
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
        transport: httpx.BaseTransport | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = _retry.check_base_url(base_url)
        self.timeout = timeout
        self.retries = retries
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_retry.headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        self._http.close()

    def health(self) -> Health:
        """Whether the service runs (GET /health, no API key needed)."""
        return self._send(_calls.health())

    def send_events(
        self, events: Iterable[Event | JsonObject], *, partial: bool = False
    ) -> EventsResult:
        """Store a batch of events (POST /v1/events), idempotently on `event_id`.

        Args:
            events: `penchant.schema.Event` records or plain dicts, at most the server's
                `service.max_batch`; an empty batch sends nothing.
            partial: store the valid events and list the rejected ones; by default one
                invalid event rejects the batch (422) and nothing is stored.

        Returns:
            How many were stored, which event ids were duplicates, and which were rejected.

        Raises:
            ApiError: the batch was rejected (422 names every invalid row in `errors`), the
                key lacks `events:write` (403), or any other error answer.
        """
        records = [_calls.record(event) for event in events]
        if not records:
            return EventsResult(stored=0)
        return self._send(_calls.send_events(records, partial))

    def upsert_items(
        self, items: Iterable[Item | JsonObject], *, partial: bool = False
    ) -> UpsertResult:
        """Insert or replace items (POST /v1/items); the last of an id in a batch wins.

        Args:
            items: `penchant.schema.Item` records or plain dicts.
            partial: upsert the valid items and list the rejected ones, instead of all or none.

        Returns:
            How many were upserted, and which were rejected.

        Raises:
            ApiError: the batch was rejected (422), or any other error answer.
        """
        return self._send(_calls.upsert("items", [_calls.record(i) for i in items], partial))

    def get_item(self, item_id: str) -> Item:
        """One item (GET /v1/items/{id}).

        Raises:
            ApiError: 404 with code `not_found` if there is no such item.
        """
        return self._send(_calls.get_item(item_id))

    def delete_item(self, item_id: str) -> None:
        """Delete one item (DELETE /v1/items/{id}).

        Raises:
            ApiError: 404 with code `not_found` if there is no such item.
        """
        self._send(_calls.delete("items", item_id))

    def upsert_users(
        self, users: Iterable[User | JsonObject], *, partial: bool = False
    ) -> UpsertResult:
        """Insert or replace users (POST /v1/users); the last of an id in a batch wins.

        Args:
            users: `penchant.schema.User` records or plain dicts.
            partial: upsert the valid users and list the rejected ones, instead of all or none.

        Returns:
            How many were upserted, and which were rejected.

        Raises:
            ApiError: the batch was rejected (422), or any other error answer.
        """
        return self._send(_calls.upsert("users", [_calls.record(u) for u in users], partial))

    def get_user(self, user_id: str) -> User:
        """One user (GET /v1/users/{id}).

        Raises:
            ApiError: 404 with code `not_found` if there is no such user.
        """
        return self._send(_calls.get_user(user_id))

    def delete_user(self, user_id: str) -> None:
        """Delete one user's catalog record (DELETE /v1/users/{id}); their events stay.

        Raises:
            ApiError: 404 with code `not_found` if there is no such user.
        """
        self._send(_calls.delete("users", user_id))

    def recommend(
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
        """Recommendations for a user or an anonymous session (POST /v1/recommendations).

        Never sent again on failure: each served list is logged as impressions.

        Args:
            user_id: the user; give this or `session_id`.
            session_id: the anonymous session; give this or `user_id`.
            k: how many items.
            surface: where the list is shown, e.g. "home".
            context: request context (device, locale, ...).
            filters: which items may be recommended.
            rules: business rules applied after scoring.
            exclude: item ids never to recommend in this list.

        Returns:
            The list, best first, with the `request_id` to send back with outcome events.

        Raises:
            ValueError: not exactly one of `user_id` and `session_id` is given.
            ApiError: any error answer.
        """
        call = _calls.recommend(user_id, session_id, k, surface, context, filters, rules, exclude)
        return self._send(call)

    def similar_items(
        self, item_id: str, *, k: int = 10, surface: str | None = None
    ) -> Recommendations:
        """Items similar to one item (GET /v1/items/{id}/similar).

        Raises:
            ApiError: any error answer.
        """
        return self._send(_calls.similar_items(item_id, k, surface))

    def session_recommendations(
        self,
        session_id: str,
        *,
        k: int = 10,
        surface: str | None = None,
        context: JsonObject | None = None,
    ) -> Recommendations:
        """Recommendations for an anonymous session (GET /v1/sessions/{id}/recommendations).

        Args:
            session_id: the session.
            k: how many items.
            surface: where the list is shown.
            context: request context, sent as one JSON-encoded `context` query parameter.

        Raises:
            ApiError: any error answer.
        """
        return self._send(_calls.session_recommendations(session_id, k, surface, context))

    def put_slot(self, slot_id: str, slot: JsonObject) -> dict[str, object]:
        """Create or replace a slot: its policy, features and reward (PUT /v1/slots/{id}).

        Returns:
            The stored slot, as JSON.

        Raises:
            ApiError: any error answer (422 names the invalid field).
        """
        return self._send(_calls.put_slot(slot_id, slot))

    def put_variant(self, slot_id: str, variant_id: str, variant: JsonObject) -> dict[str, object]:
        """Add or replace a variant of a slot (PUT /v1/slots/{id}/variants/{variant_id}).

        Raises:
            ApiError: any error answer (404 when there is no such slot).
        """
        return self._send(_calls.put_variant(slot_id, variant_id, variant))

    def decide(
        self,
        slot: str,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        context: JsonObject | None = None,
    ) -> Decision:
        """The variant of a slot this person or session should see (POST /v1/decisions).

        Never sent again on failure: each decision is counted and logged.

        Args:
            slot: the slot.
            user_id: the person; give this or `session_id` (or both).
            session_id: the anonymous session.
            context: device, locale, surface, segment and time of the request.

        Returns:
            The decision, with the `decision_id` to send back with outcome events.

        Raises:
            ValueError: neither `user_id` nor `session_id` is given.
            ApiError: any error answer (404 when no approved variant fits the request).
        """
        return self._send(_calls.decide(slot, user_id, session_id, context))

    def put_experiment(self, experiment_id: str, experiment: JsonObject) -> dict[str, object]:
        """Define an experiment as a draft, or redefine a draft (PUT /v1/experiments/{id}).

        Args:
            experiment_id: its id.
            experiment: its surface, arms (the first is the control), unit, ramp, holdout.

        Returns:
            The stored experiment, as JSON.

        Raises:
            ApiError: any error answer (409 once it has started; 422 names the bad field).
        """
        return self._send(_calls.put_experiment(experiment_id, experiment))

    def start_experiment(self, experiment_id: str) -> dict[str, object]:
        """Start serving an experiment's arms (POST /v1/experiments/{id}/start).

        Raises:
            ApiError: any error answer (409 when another experiment runs on its surface).
        """
        return self._send(_calls.experiment_action(experiment_id, "start"))

    def stop_experiment(self, experiment_id: str) -> dict[str, object]:
        """Stop serving an experiment's arms (POST /v1/experiments/{id}/stop).

        Raises:
            ApiError: any error answer (409 when it is not running).
        """
        return self._send(_calls.experiment_action(experiment_id, "stop"))

    def experiment_report(self, experiment_id: str, alpha: float = 0.05) -> dict[str, object]:
        """Each metric per arm, its lift over the control with an interval, p-values and
        verdicts, from the event log (GET /v1/experiments/{id}/report).

        Raises:
            ApiError: any error answer (404 for no such experiment).
        """
        return self._send(_calls.experiment_report(experiment_id, alpha))

    def _send(self, call: Call[T]) -> T:
        """Send a call, again while the retry policy allows, and read its answer."""
        for attempt in itertools.count():
            try:
                response = self._http.request(
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
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
