"""What the sync and async clients share: headers, the retry policy and answer reading."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from penchant import __version__
from penchant.client._calls import Call, T
from penchant.client._errors import ApiError, error_from_response

#: The first pause before sending a call again, in seconds; it doubles on each retry.
BACKOFF_S = 0.1
#: The longest pause between two tries, even when the server asks for a longer one.
MAX_BACKOFF_S = 1.0

#: Failures after which an idempotent call is sent again: the request did not get through, or
#: the connection broke before an answer (a kept-alive connection the server had closed).
#: A read timeout is not among them: the server may still be working on the request.
RETRYABLE = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash.

    Raises:
        ValueError: it is not an http:// or https:// URL with a host.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be http://host[:port][/path], not {base_url!r}")
    return base_url.rstrip("/")


def headers(api_key: str | None) -> dict[str, str]:
    """The headers of every request."""
    sent = {"Accept": "application/json", "User-Agent": f"penchant-client/{__version__}"}
    if api_key is not None:
        sent["Authorization"] = f"Bearer {api_key}"
    return sent


def request_headers(call: Call[T]) -> dict[str, str] | None:
    """The headers of one call beyond the client's own."""
    return {"Content-Type": "application/json"} if call.body is not None else None


def delay_after_error(call: Call[T], attempt: int, retries: int, exc: Exception) -> float | None:
    """The pause before sending `call` again after a transport failure, or None to give up."""
    if not call.retry or attempt >= retries or not isinstance(exc, RETRYABLE):
        return None
    return _backoff(attempt)


def delay_after_answer(
    call: Call[T], attempt: int, retries: int, response: httpx.Response
) -> float | None:
    """The pause before sending `call` again after an answer, or None to keep the answer.

    Only a 503 of an idempotent call is retried, after the server's `Retry-After` (capped at
    `MAX_BACKOFF_S`) or an exponential backoff; a 4xx never is.
    """
    if response.status_code != 503 or not call.retry or attempt >= retries:
        return None
    try:
        asked = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return _backoff(attempt)
    return min(max(asked, 0.0), MAX_BACKOFF_S)


def _backoff(attempt: int) -> float:
    return float(min(BACKOFF_S * 2**attempt, MAX_BACKOFF_S))


def result(call: Call[T], response: httpx.Response) -> T:
    """The result of a call from its answer.

    Raises:
        ApiError: the answer is an error (`ServiceUnavailable` for 503), or a 2xx answer
            whose body is not what the API sends.
    """
    if not response.is_success:
        raise error_from_response(response)
    try:
        return call.parse(response.content)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        message = f"the answer to {call.method} {call.path} is not what the API sends: {exc}"
        raise ApiError(response.status_code, "invalid_response", message) from None
