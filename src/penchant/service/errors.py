"""Errors as part of the API: one error body, and every exception mapped to a status here."""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from penchant.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PenchantError,
    RateLimited,
    StoreError,
    Unauthorized,
    Unavailable,
)
from penchant.ingest.validate import InvalidBatch, RowError

logger = logging.getLogger("penchant.service")

#: The status of each domain error; a subclass takes the status of its nearest listed base.
STATUS: dict[type[PenchantError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    PayloadTooLarge: 413,
    RateLimited: 429,
    StoreError: 503,
    Unavailable: 503,
    PenchantError: 500,
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_content(
    code: str,
    message: str,
    field: str | None = None,
    errors: Sequence[RowError] | None = None,
) -> dict[str, Any]:
    """The one error body: `{"error": {code, message, field}}`, plus row errors of a batch."""
    content: dict[str, Any] = {"error": {"code": code, "message": message, "field": field}}
    if errors is not None:
        content["errors"] = [
            {"index": e.index, "field": e.field, "message": e.message} for e in errors
        ]
    return content


def status_of(exc: PenchantError) -> int:
    """The HTTP status of a domain error."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PenchantError)
    return domain_error_response(exc)


def domain_error_response(exc: PenchantError) -> JSONResponse:
    """The answer to a domain error: its status, the error body, and the headers it needs
    (`WWW-Authenticate` with a 401, `Retry-After` when the store is unavailable)."""
    status = status_of(exc)
    headers: dict[str, str] = {}
    message = exc.message
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    elif isinstance(exc, StoreError):
        # Driver messages can carry statement parameters, which are user data.
        logger.error("store unavailable: %s", type(exc.__cause__).__name__)
        message, headers["Retry-After"] = "the store is unavailable; retry later", "1"
    errors = exc.errors if isinstance(exc, InvalidBatch) else None
    content = error_content(exc.code, message, exc.field, errors)
    return JSONResponse(content, status_code=status, headers=headers)


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        # Drop the "query"/"path"/"body" prefix: the field name alone is what callers know.
        loc = [str(p) for p in err.get("loc", ())][1:] or ["request"]
        if err.get("type") == "json_invalid":  # located by a character position in the body
            loc = ["body"]
        errors.append(RowError(index=None, field=".".join(loc), message=str(err.get("msg", ""))))
    first = errors[0] if errors else RowError(None, "request", "invalid request")
    content = error_content("invalid_input", first.message, first.field, errors)
    return JSONResponse(content, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI could not read a route's JSON body (not UTF-8, nested too deep): answer as
        # the routes that read their body themselves do (found by fuzzing: an undeclared 400).
        message = f"the body is not valid JSON: {exc.__cause__}"
        return JSONResponse(error_content("invalid_input", message, "body"), status_code=422)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    content = error_content(code, str(exc.detail))
    return JSONResponse(content, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, request validation errors and HTTP errors to the error body."""
    app.add_exception_handler(PenchantError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(ContainErrors)


class ContainErrors:
    """Turns any unexpected exception into a generic 500, logged without payloads.

    Starlette's own last-resort handler re-raises so that the server logs the exception, and
    an exception's message can carry request data; this middleware logs only the exception
    type, the route template and where each stack frame was, and re-raises nothing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            route = getattr(scope.get("route"), "path", "?")
            logger.error(
                "unhandled %s in %s %s\n%s",
                type(exc).__name__,
                scope.get("method", "?"),
                route,
                _frames(exc),
            )
            if not started:
                await send_error(send, 500, error_content("internal", "internal server error"))


def _frames(exc: BaseException) -> str:
    """Where an exception passed: file, line and function of each frame, no values."""
    frames = traceback.extract_tb(exc.__traceback__)
    return "\n".join(f"  {f.filename}:{f.lineno} in {f.name}" for f in frames)


async def send_error(send: Send, status: int, content: dict[str, Any]) -> None:
    """Send an error body straight through ASGI, for middleware outside the router."""
    body = orjson.dumps(content)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
