"""Request and response schemas of the HTTP API, apart from the domain records."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field

from penchant.errors import InvalidInput
from penchant.ingest.validate import RowError
from penchant.schema import Event, Item, User


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="stable machine-readable code, e.g. invalid_input")
    message: str
    field: str | None = Field(default=None, description="the offending field, when known")


class RowErrorOut(BaseModel):
    """Why one row of a batch was rejected."""

    index: int | None = Field(description="position of the row in the batch")
    field: str = Field(description="e.g. events[3].type")
    message: str

    @classmethod
    def of(cls, errors: list[RowError]) -> list[RowErrorOut]:
        """The API form of validation row errors."""
        return [cls(index=e.index, field=e.field, message=e.message) for e in errors]


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail
    errors: list[RowErrorOut] | None = Field(
        default=None, description="every rejected row, when a batch was rejected"
    )


#: Error answers every authenticated route can give, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API key, or an invalid or revoked one"},
    403: {"model": ErrorOut, "description": "The API key lacks the scope"},
    409: {"model": ErrorOut, "description": "Conflicts with what is stored (e.g. an erased id)"},
    413: {"model": ErrorOut, "description": "Body or batch over the configured limit"},
    422: {"model": ErrorOut, "description": "Invalid input; `errors` names every bad row"},
    429: {"model": ErrorOut, "description": "Over the API key's rate limit; see Retry-After"},
    503: {"model": ErrorOut, "description": "The store is unavailable; retry"},
}

#: The error answer of every route with an `{id}` in its path: no such record, or an id with a
#: `/` in it, which makes a path that no route matches.
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such record, or no route for this id"},
}


class EventsIn(BaseModel):
    """A batch of events (documentation only: the route validates the raw body itself)."""

    events: list[Event] = Field(
        min_length=1,
        description=(
            "1 to `service.max_batch` events. Give every event its own `event_id`: it is the "
            "idempotency key, so a retried batch is stored once. Events without one get a "
            "server-assigned id, and a retry of them is stored again."
        ),
    )


class EventsOut(BaseModel):
    """What a batch of events did. Sent only once the stored events are durable."""

    stored: int = Field(description="events newly stored")
    duplicates: list[str] = Field(description="event ids already stored, not stored again")
    rejected: list[RowErrorOut] = Field(description="invalid events left out (partial=true)")


class ItemsIn(BaseModel):
    """A batch of items to insert or replace (documentation only)."""

    items: list[Item] = Field(min_length=1)


class UsersIn(BaseModel):
    """A batch of users to insert or replace (documentation only)."""

    users: list[User] = Field(min_length=1)


class UpsertOut(BaseModel):
    """What a batch upsert did."""

    upserted: int = Field(description="records inserted or replaced")
    rejected: list[RowErrorOut] = Field(description="invalid records left out (partial=true)")


class RecommendedItemOut(BaseModel):
    """One recommended item."""

    item_id: str
    score: float = Field(
        description="the pipeline's score (higher is better); re-rankers such as diversity "
        "may place a lower score above a higher one, and the list order is the answer"
    )
    reason: str | None = Field(description='why it is shown, e.g. "because you viewed X"')


class RecommendationsOut(BaseModel):
    """A served list. Its items are logged as impressions carrying `request_id`; send that id
    back in the context of later events (clicks, purchases) to link them to this list."""

    request_id: str
    items: list[RecommendedItemOut]
    model_version: str | None = Field(description="the model bundle that ranked the list")
    pipeline: str = Field(description="the surface pipeline that produced it")


class HealthOut(BaseModel):
    """Liveness."""

    status: str
    version: str


def json_body(model: type[BaseModel], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An `openapi_extra` documenting a JSON body that a route reads and validates itself.

    Args:
        model: the schema of the body.
        optional: required fields the route fills in itself (such as the id from the path).

    Returns:
        The OpenAPI `requestBody`, with the model's schema inlined.
    """
    schema = model.model_json_schema()
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    if optional:
        inlined["required"] = [f for f in inlined.get("required", []) if f not in optional]
    content = {"application/json": {"schema": inlined}}
    return {"requestBody": {"required": True, "content": content}}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with each local `$ref` replaced by its definition (no recursive types)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def json_object(text: bytes | str, field: str = "body") -> dict[str, Any]:
    """A request body (or a query parameter, named by `field`) that must be one JSON object.

    Raises:
        InvalidInput: it is not JSON, or not an object (naming `field`).
    """
    what = "the body" if field == "body" else field
    try:
        fields = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}", field=field) from exc
    if not isinstance(fields, dict):
        raise InvalidInput(f"{what} must be a JSON object", field=field)
    return fields
