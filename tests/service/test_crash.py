"""kill -9 the real server mid-stream: every acknowledged event survives, and none twice."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from penchant.privacy.keys import create_key
from penchant.settings import load_settings
from penchant.store import open_store
from penchant.testing.server import free_port, start_server

CLIENTS, BATCHES_PER_CLIENT, EVENTS_PER_BATCH = 3, 10, 200
ACKS_BEFORE_KILL = 6


def _start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    try:
        return start_server(data_dir, port, log=log, timeout_s=20)
    except RuntimeError as exc:
        pytest.fail(f"{exc}:\n{log.read_text()}")


def _batch(client: int, number: int) -> bytes:
    events = [
        {"event_id": f"c{client}-b{number}-{i}", "user_id": f"u{i % 17}", "type": "view"}
        for i in range(EVENTS_PER_BATCH)
    ]
    return orjson.dumps({"events": events})


def _post(conn: http.client.HTTPConnection, body: bytes, key: str) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request("POST", "/v1/events", body=body, headers=headers)
    answer = conn.getresponse()
    return answer.status, orjson.loads(answer.read())


@pytest.mark.slow
def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    store = open_store(settings.store_url)
    key = create_key(store.keys, "default", ["events:write"])
    store.close()
    port, log = free_port(), tmp_path / "server.log"
    server = _start(tmp_path, port, log)

    acked: list[tuple[int, int]] = []
    failed: list[tuple[int, int]] = []

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for batch in range(BATCHES_PER_CLIENT):
            try:
                status, _ = _post(conn, _batch(number, batch), key)
            except (OSError, http.client.HTTPException):
                failed.append((number, batch))  # the server died under this request
                return
            if 200 <= status < 300:
                acked.append((number, batch))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < ACKS_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    for thread in threads:
        thread.join()
    assert len(acked) >= ACKS_BEFORE_KILL
    assert failed, "the kill should have cut requests off"

    # After a restart, every acknowledged event is there exactly once ...
    server = _start(tmp_path, port, log)
    try:
        store = open_store(settings.store_url)
        counts = Counter(e.event_id for page in store.events.scan("default") for e in page)
        for number, batch in acked:
            for i in range(EVENTS_PER_BATCH):
                assert counts[f"c{number}-b{batch}-{i}"] == 1
        assert max(counts.values()) == 1

        # ... and clients retrying everything, acknowledged or not, store nothing twice.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for number in range(CLIENTS):
            for batch in range(BATCHES_PER_CLIENT):
                status, answer = _post(conn, _batch(number, batch), key)
                assert status == 200
                if (number, batch) in acked:
                    assert answer["stored"] == 0
        counts = Counter(e.event_id for page in store.events.scan("default") for e in page)
        assert len(counts) == CLIENTS * BATCHES_PER_CLIENT * EVENTS_PER_BATCH
        assert max(counts.values()) == 1
        store.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
