"""Errors of the client: every non-2xx answer, and every request that got no answer."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import orjson
from pydantic import ValidationError

from penchant.client._models import RowError
from penchant.errors import PenchantError

#: A code for an error answer without the API's error body (e.g. from a proxy).
_STATUS_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    413: "payload_too_large",
    422: "invalid_input",
    503: "unavailable",
}


class ApiError(PenchantError):
    """The service answered with an error status, or gave no usable answer.

    Attributes:
        status: the HTTP status, or None when no answer came (see `ConnectionFailed`).
        code: the API's stable error code, e.g. `not_found`, `invalid_input`, `unauthorized`.
        message: the API's message.
        field: the offending field, when the API names one (e.g. `id`, `events[0].type`).
        errors: every rejected row, when the API rejected a batch as a whole.
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        field: str | None = None,
        errors: Sequence[RowError] = (),
    ) -> None:
        super().__init__(message, field=field)
        self.status = status
        self.code = code
        self.errors = tuple(errors)

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        status = f"HTTP {self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"


class ServiceUnavailable(ApiError):
    """The service cannot serve now (503, e.g. its store is unavailable); retry later."""


class ConnectionFailed(ServiceUnavailable):
    """No answer came: the service could not be reached, or it did not answer in time."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(None, code, message)


def error_from_response(response: httpx.Response) -> ApiError:
    """The error an error answer stands for, read from the API's one error body.

    Args:
        response: a read answer with a non-2xx status.

    Returns:
        `ServiceUnavailable` for 503, else `ApiError`; an answer without the error body
        (from a proxy, say) gets a code from its status and its reason phrase as message.
    """
    status = response.status_code
    cls = ServiceUnavailable if status == 503 else ApiError
    code = _STATUS_CODES.get(status, "http_error")
    message = response.reason_phrase or f"HTTP {status}"
    try:
        body = orjson.loads(response.content)
        detail = body["error"]
        rows = [RowError.model_validate(row) for row in body.get("errors") or ()]
        return cls(
            status,
            str(detail["code"]),
            str(detail["message"]),
            detail.get("field"),
            rows,
        )
    except (ValueError, TypeError, KeyError, AttributeError, ValidationError):
        return cls(status, code, message)


def connection_error(exc: httpx.TransportError, url: str, timeout: float) -> ConnectionFailed:
    """A readable `ConnectionFailed` for a transport failure; it never names the API key.

    Args:
        exc: what httpx raised.
        url: the base URL of the service.
        timeout: the client's timeout, in seconds.

    Returns:
        The error to raise, from `exc`.
    """
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailed("timeout", f"no answer from {url} within {timeout:g} s")
    reason = str(exc) or type(exc).__name__
    return ConnectionFailed("connection_failed", f"cannot reach {url}: {reason}")
