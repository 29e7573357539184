"""`penchant serve --workers N`: a listening socket per worker, connections spread over them,
a dead worker replaced, no worker left behind by its supervisor."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from penchant.testing.server import free_port, start_server

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's"
)


def children(pid: int) -> list[int]:
    """Worker processes of a supervisor (not multiprocessing's resource tracker)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"resource_tracker" not in cmdline:
                out.append(int(child))
    return out


def sockets(pid: int) -> int:
    return sum(
        1 for fd in Path(f"/proc/{pid}/fd").iterdir() if os.readlink(fd).startswith("socket:")
    )


def wait_for(condition: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def listening(port: int) -> int:
    """How many sockets listen on the port (one per worker once each has started)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                count += 1
    return count


def healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A supervisor with two workers on a fresh data directory: (its pid, the port)."""
    port = free_port()
    process = start_server(tmp_path, port, workers=2, log=tmp_path / "server.log")
    try:
        wait_for(lambda: len(children(process.pid)) == 2 and listening(port) == 2)
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(60)


def test_connections_spread_over_the_workers(server: tuple[int, int]) -> None:
    pid, port = server
    workers = children(pid)
    idle = {w: sockets(w) for w in workers}
    connections = []
    for _ in range(32):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().read()
        connections.append(conn)
    held = [sockets(w) - idle[w] for w in workers]
    assert sum(held) == 32
    assert min(held) >= 4  # a fair split of 32 falls below 4 about once in 100,000 runs
    for conn in connections:
        conn.close()


def test_a_dead_worker_is_replaced(server: tuple[int, int]) -> None:
    pid, port = server
    first, second = children(pid)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(children(pid)) == 2 and first not in children(pid))
    assert second in children(pid)
    wait_for(lambda: listening(port) == 2)
    assert healthy(port)


def test_workers_leave_with_their_supervisor(tmp_path: Path) -> None:
    port = free_port()
    process = start_server(tmp_path, port, workers=2, log=tmp_path / "server.log")
    wait_for(lambda: len(children(process.pid)) == 2)
    workers = children(process.pid)
    process.kill()  # no chance to stop them itself
    process.wait(10)
    wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), timeout_s=30)
    assert not healthy(port)


def test_a_taken_port_is_refused_with_one_line(tmp_path: Path) -> None:
    """Sockets sharing a port would quietly split its connections with whatever holds it."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        log = tmp_path / "server.log"
        with pytest.raises(RuntimeError, match="exited"):
            start_server(tmp_path, port, workers=2, log=log, timeout_s=60)
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()
