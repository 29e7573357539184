"""A small real OpenAI-compatible chat-completions server for tests, on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass
class Received:
    """One request as the server got it."""

    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    """What the server answers next: a status, a body, and an optional stall first."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    stall_s: float = 0.0


@dataclass
class FakeChatServer:
    """Records each request and answers with `reply`; use as a context manager."""

    reply: Reply = field(default_factory=Reply)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.received.append(Received(self.path, headers, body))
                reply = fake.reply
                if reply.stall_s and fake._release.wait(reply.stall_s):
                    return  # the test is over: drop the connection
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (a timeout test) is not a failure here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The server's base URL, without /v1."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, content: str) -> None:
        """Answer with a chat completion whose message content is `content`."""
        completion = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
        self.reply = Reply(body=json.dumps(completion).encode())

    def respond(
        self, status: int, body: bytes | str, content_type: str = "application/json"
    ) -> None:
        """Answer with this status and raw body."""
        raw = body.encode() if isinstance(body, str) else body
        self.reply = Reply(status=status, body=raw, content_type=content_type)

    def stall(self, seconds: float) -> None:
        """Wait this long before answering (or until the server closes)."""
        self.reply = Reply(stall_s=seconds)

    def close(self) -> None:
        """Stop serving and free the port."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeChatServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
