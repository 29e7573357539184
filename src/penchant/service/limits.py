"""The request body size limit, as pure ASGI middleware so that no oversized body is buffered."""

from __future__ import annotations

import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from penchant.service.errors import error_content, send_error


class _TooLarge(Exception):
    """Raised from `receive` once a streamed body passes the limit."""


class BodySizeLimit:
    """Answers 413 when a body is over `max_bytes`.

    A declared `Content-Length` over the limit is refused before the app runs; a body without
    one (chunked) is counted as it streams in, and the request is cut off once it passes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        tripped = started = False

        async def limited_receive() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    tripped = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if tripped:
                return  # the 413 below replaces whatever the app makes of the cut-off body
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if tripped and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        message = f"the request body is over the limit of {self.max_bytes} bytes"
        await send_error(send, 413, error_content("payload_too_large", message, "body"))


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server rejects a malformed length itself
    return 0
