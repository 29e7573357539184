"""What each API call sends and how its answer is read, shared by the sync and async clients."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import quote

import orjson
from pydantic import BaseModel

from penchant.client._models import (
    Decision,
    EventsResult,
    Health,
    Recommendations,
    UpsertResult,
)

if TYPE_CHECKING:
    from penchant.schema import Item, User

T = TypeVar("T")

#: A JSON object as callers give it: a dict of JSON values (datetimes are fine too).
JsonObject = Mapping[str, object]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request of the API and the reader of its successful answer.

    Attributes:
        method: the HTTP method.
        path: the path below the base URL, its ids already quoted.
        parse: turns the body of a 2xx answer into the result.
        params: the query parameters.
        body: the JSON body, serialized.
        retry: whether the call is idempotent, so that it may be sent again.
    """

    method: str
    path: str
    parse: Callable[[bytes], T]
    params: Mapping[str, str] | None = None
    body: bytes | None = None
    retry: bool = False


def segment(value: str, name: str) -> str:
    """One path segment holding an id, quoted so that the id addresses exactly one record.

    Raises:
        ValueError: the id is empty.
    """
    if not value:
        raise ValueError(f"{name} must not be empty")
    quoted = quote(value, safe="")
    # "." and ".." would be removed from the path as dot segments before the request is sent.
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def record(value: BaseModel | JsonObject) -> dict[str, object]:
    """The JSON form of one record given as a pydantic model or as a mapping."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return dict(value)


def _partial(partial: bool) -> Mapping[str, str] | None:
    return {"partial": "true"} if partial else None


def _none(_content: bytes) -> None:
    return None


def health() -> Call[Health]:
    """GET /health."""
    return Call("GET", "/health", Health.model_validate_json, retry=True)


def send_events(events: list[dict[str, object]], partial: bool) -> Call[EventsResult]:
    """POST /v1/events, sent again on failure only if every event has its `event_id`.

    Events without one get a server-assigned id, so a retried batch would store them twice.
    """
    body = orjson.dumps({"events": events})
    idempotent = all(event.get("event_id") for event in events)
    parse = EventsResult.model_validate_json
    return Call("POST", "/v1/events", parse, _partial(partial), body, retry=idempotent)


def upsert(name: str, records: list[dict[str, object]], partial: bool) -> Call[UpsertResult]:
    """POST /v1/{name} (items or users) with a batch of records."""
    body = orjson.dumps({name: records})
    return Call("POST", f"/v1/{name}", UpsertResult.model_validate_json, _partial(partial), body)


def get_item(item_id: str) -> Call[Item]:
    """GET /v1/items/{id}."""
    # Imported here: the schema pulls in numpy and builds its models, which a client that
    # never reads a record should not pay for at import.
    from penchant.schema import Item

    return Call(
        "GET", f"/v1/items/{segment(item_id, 'item_id')}", Item.model_validate_json, retry=True
    )


def get_user(user_id: str) -> Call[User]:
    """GET /v1/users/{id}."""
    from penchant.schema import User

    return Call(
        "GET", f"/v1/users/{segment(user_id, 'user_id')}", User.model_validate_json, retry=True
    )


def delete(name: str, record_id: str) -> Call[None]:
    """DELETE /v1/{name}/{id} (items or users); not sent again, as a repeat would answer 404."""
    return Call("DELETE", f"/v1/{name}/{segment(record_id, 'id')}", _none)


def recommend(
    user_id: str | None,
    session_id: str | None,
    k: int,
    surface: str | None,
    context: JsonObject | None,
    filters: JsonObject | None,
    rules: Iterable[JsonObject] | None,
    exclude: Iterable[str] | None,
) -> Call[Recommendations]:
    """POST /v1/recommendations; not sent again, as each served list is logged as impressions.

    Raises:
        ValueError: not exactly one of `user_id` and `session_id` is given.
    """
    if (user_id is None) == (session_id is None):
        raise ValueError("give exactly one of user_id and session_id")
    fields: dict[str, object | None] = {
        "user_id": user_id,
        "session_id": session_id,
        "k": k,
        "surface": surface,
        "context": None if context is None else dict(context),
        "filters": None if filters is None else dict(filters),
        "rules": None if rules is None else [dict(rule) for rule in rules],
        "exclude": None if exclude is None else list(exclude),
    }
    body = orjson.dumps({name: value for name, value in fields.items() if value is not None})
    return Call("POST", "/v1/recommendations", Recommendations.model_validate_json, body=body)


def similar_items(item_id: str, k: int, surface: str | None) -> Call[Recommendations]:
    """GET /v1/items/{id}/similar?k=K[&surface=S]."""
    path = f"/v1/items/{segment(item_id, 'item_id')}/similar"
    params = _query(k, surface, None)
    return Call("GET", path, Recommendations.model_validate_json, params, retry=True)


def session_recommendations(
    session_id: str, k: int, surface: str | None, context: JsonObject | None
) -> Call[Recommendations]:
    """GET /v1/sessions/{id}/recommendations?k=K[&surface=S][&context=JSON]."""
    path = f"/v1/sessions/{segment(session_id, 'session_id')}/recommendations"
    params = _query(k, surface, context)
    return Call("GET", path, Recommendations.model_validate_json, params, retry=True)


def put_slot(slot_id: str, slot: JsonObject) -> Call[dict[str, object]]:
    """PUT /v1/slots/{id}; idempotent, so sent again on a transient failure."""
    path = f"/v1/slots/{segment(slot_id, 'slot_id')}"
    return Call("PUT", path, orjson.loads, body=orjson.dumps(dict(slot)), retry=True)


def put_variant(slot_id: str, variant_id: str, variant: JsonObject) -> Call[dict[str, object]]:
    """PUT /v1/slots/{id}/variants/{variant_id}; idempotent."""
    path = f"/v1/slots/{segment(slot_id, 'slot_id')}/variants/{segment(variant_id, 'variant_id')}"
    return Call("PUT", path, orjson.loads, body=orjson.dumps(dict(variant)), retry=True)


def decide(
    slot: str, user_id: str | None, session_id: str | None, context: JsonObject | None
) -> Call[Decision]:
    """POST /v1/decisions; not sent again, as each decision is counted and logged.

    Raises:
        ValueError: neither `user_id` nor `session_id` is given.
    """
    if user_id is None and session_id is None:
        raise ValueError("give user_id or session_id")
    fields: dict[str, object | None] = {
        "slot": slot,
        "user_id": user_id,
        "session_id": session_id,
        "context": None if context is None else dict(context),
    }
    body = orjson.dumps({name: value for name, value in fields.items() if value is not None})
    return Call("POST", "/v1/decisions", Decision.model_validate_json, body=body)


def put_experiment(experiment_id: str, experiment: JsonObject) -> Call[dict[str, object]]:
    """PUT /v1/experiments/{id}; idempotent while the experiment is a draft."""
    path = f"/v1/experiments/{segment(experiment_id, 'experiment_id')}"
    return Call("PUT", path, orjson.loads, body=orjson.dumps(dict(experiment)), retry=True)


def experiment_action(experiment_id: str, action: str) -> Call[dict[str, object]]:
    """POST /v1/experiments/{id}/start or /stop; not sent again (a second start is a 409)."""
    if action not in ("start", "stop"):
        raise ValueError("action is start or stop")
    path = f"/v1/experiments/{segment(experiment_id, 'experiment_id')}/{action}"
    return Call("POST", path, orjson.loads)


def experiment_report(experiment_id: str, alpha: float) -> Call[dict[str, object]]:
    """GET /v1/experiments/{id}/report?alpha=A."""
    path = f"/v1/experiments/{segment(experiment_id, 'experiment_id')}/report"
    return Call("GET", path, orjson.loads, {"alpha": repr(alpha)}, retry=True)


def _query(k: int, surface: str | None, context: JsonObject | None) -> dict[str, str]:
    params = {"k": str(k)}
    if surface is not None:
        params["surface"] = surface
    if context is not None:
        # A GET has no body: the context travels as one JSON-encoded query parameter.
        params["context"] = orjson.dumps(dict(context)).decode()
    return params
