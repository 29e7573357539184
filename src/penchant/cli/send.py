"""`penchant send`: post a JSONL file of events to a running server, as any client would."""

from __future__ import annotations

import http.client
import os
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from penchant.cli.common import DataDir, Json, out, print_json, settings_for
from penchant.errors import InvalidInput, PenchantError, Unauthorized
from penchant.settings import Settings


def send(
    file: Annotated[Path, typer.Argument(help="JSONL: one event object per line.")],
    url: Annotated[
        str | None,
        typer.Option(help="The server (default: http://<service.host>:<service.port>)."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            help="API key with events:write (default: $PENCHANT_API_KEY, then the data "
            "directory's admin.key).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[int, typer.Option(help="Events per request.", min=1, max=10_000)] = 1_000,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Send events to a running server through POST /v1/events, in batches.

    Each batch is stored all or nothing; the first rejected batch stops the upload with the
    server's reason, and the batches before it stay stored (sending again is harmless when
    the events carry event_ids).
    """
    settings = settings_for(data_dir)
    token = key or os.environ.get("PENCHANT_API_KEY") or _key_file(settings)
    target = urllib.parse.urlsplit(url or f"http://{settings.service.host}:{settings.service.port}")
    if target.scheme not in ("http", "https") or not target.hostname:
        raise InvalidInput(f"--url {url!r}: expected http://host:port", field="url")
    totals = {"sent": 0, "stored": 0, "duplicates": 0, "batches": 0}
    conn = _connect(target)
    try:
        for events in _batches(file, batch):
            answer = _post(conn, target.path.rstrip("/") + "/v1/events", events, token)
            totals["sent"] += len(events)
            totals["stored"] += int(answer["stored"])
            totals["duplicates"] += len(answer["duplicates"])
            totals["batches"] += 1
    finally:
        conn.close()
    if json:
        print_json(totals)
    else:
        out().print(
            f"sent {totals['sent']:,} events in {totals['batches']} requests: "
            f"{totals['stored']:,} stored, {totals['duplicates']:,} already there"
        )


def _key_file(settings: Settings) -> str:
    path = settings.key_file
    if not path.is_file():
        raise Unauthorized(
            f"no API key: pass --key, set PENCHANT_API_KEY, or run `penchant init` ({path})"
        )
    return path.read_text(encoding="utf-8").strip()


def _connect(target: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    return kind(target.hostname or "", target.port, timeout=60)


def _batches(file: Path, size: int) -> Any:
    """Lists of at most `size` event objects, read line by line."""
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise InvalidInput(f"{file}: {exc.strerror}") from None
    with handle:
        events: list[Any] = []
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise InvalidInput(f"{file}:{number}: not a JSON object") from None
            if len(events) == size:
                yield events
                events = []
        if events:
            yield events


def _post(
    conn: http.client.HTTPConnection, path: str, events: list[Any], token: str
) -> dict[str, Any]:
    body = orjson.dumps({"events": events})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    except OSError as exc:
        raise PenchantError(f"cannot reach the server: {exc}") from None
    try:
        answer: dict[str, Any] = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError:
        answer = {}
    if response.status != 200:
        error = answer.get("error", {})
        raise PenchantError(
            f"the server refused a batch (HTTP {response.status}): "
            f"{error.get('message', data[:200].decode(errors='replace'))}"
        )
    return answer
