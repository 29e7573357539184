"""`penchant serve --workers N`: the supervisor deals connections out evenly, a dead worker is
replaced, no worker is left behind by its supervisor."""

from __future__ import annotations

import contextlib
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
    not sys.platform.startswith("linux"), reason="reads the processes' sockets in /proc"
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


def held(pid: int, port: int) -> int:
    """Established connections on the service's port that a process holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(f"socket:[{fields[9]}]")
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed while counting
            count += os.readlink(fd) in inodes
    return count


def wait_for(condition: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def listening(port: int) -> int:
    """How many sockets listen on the port."""
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
        wait_for(lambda: len(children(process.pid)) == 2 and healthy(port))
        both_serving(process.pid, port)
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(60)


def open_connections(port: int, count: int) -> list[http.client.HTTPConnection]:
    """Keep-alive connections, each having answered one request."""
    connections = []
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().read()
        connections.append(conn)
    return connections


def both_serving(pid: int, port: int, timeout_s: float = 60.0) -> None:
    """Wait until both workers serve: a worker still starting gets connections only when no
    started one is there, so probes land on the second worker once it has started."""
    workers = children(pid)
    probes: list[http.client.HTTPConnection] = []
    deadline = time.monotonic() + timeout_s
    while not all(held(w, port) for w in workers):
        assert time.monotonic() < deadline, "a worker never started serving"
        probes += open_connections(port, 1)
        time.sleep(0.2)
    for conn in probes:
        conn.close()
    wait_for(lambda: not any(held(w, port) for w in workers))
    time.sleep(0.5)  # workers report their open connections every 0.1 s


def test_connections_are_dealt_out_evenly(server: tuple[int, int]) -> None:
    pid, port = server
    assert listening(port) == 1  # the supervisor's
    workers = children(pid)
    connections = open_connections(port, 32)
    assert sorted(held(w, port) for w in workers) == [16, 16]
    for conn in connections[:12]:  # close 12, split in some way between the workers
        conn.close()
    wait_for(lambda: sum(held(w, port) for w in workers) == 20)
    time.sleep(0.5)  # workers report their open connections every 0.1 s
    more = open_connections(port, 12)  # each worker gets what it lost
    assert sorted(held(w, port) for w in workers) == [16, 16]
    for conn in connections[12:] + more:
        conn.close()


def allowed_cpus(pid: int) -> set[int]:
    """The CPUs a process's main thread may run on (Linux pins threads one by one)."""
    return set(os.sched_getaffinity(pid))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two CPUs")
def test_each_worker_answers_on_a_cpu_of_its_own(server: tuple[int, int]) -> None:
    """Each worker's request thread has a CPU of its own; its impression writer keeps all."""
    pid, _ = server
    everything = allowed_cpus(pid)
    workers = children(pid)
    pinned = [allowed_cpus(w) for w in workers]
    assert all(len(cpus) == 1 for cpus in pinned)
    assert pinned[0] != pinned[1] and pinned[0] | pinned[1] <= everything
    writers = [c for w in workers for c in children(w)]
    assert writers and all(allowed_cpus(c) == everything for c in writers)


def test_workers_are_not_pinned_when_told_not_to(tmp_path: Path) -> None:
    port = free_port()
    env = {"PENCHANT_SERVICE__PIN_WORKERS": "false"}
    process = start_server(tmp_path, port, workers=2, env=env, log=tmp_path / "server.log")
    try:
        wait_for(lambda: len(children(process.pid)) == 2 and healthy(port))
        both_serving(process.pid, port)
        everything = allowed_cpus(process.pid)
        assert all(allowed_cpus(w) == everything for w in children(process.pid))
    finally:
        process.terminate()
        process.wait(60)


def test_a_dead_worker_is_replaced(server: tuple[int, int]) -> None:
    pid, port = server
    first, second = children(pid)
    its_cpus = allowed_cpus(first)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(children(pid)) == 2 and first not in children(pid))
    assert second in children(pid)
    wait_for(lambda: healthy(port))
    both_serving(pid, port)  # the new worker takes connections once it has started
    (replacement,) = [w for w in children(pid) if w != second]
    assert allowed_cpus(replacement) == its_cpus  # pinned or not, as the one it replaces


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


def test_a_worker_with_a_full_unix_socket_is_skipped_not_dropped() -> None:
    """A worker that cannot take a connection right now (busy, starting) gets the next one
    once it can; only a failed socket marks it broken."""
    from penchant.service.workers import _Pool, _Worker

    pool = _Pool(None, {})  # type: ignore[arg-type]
    ends = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    full, free = (_Worker(None, mine) for mine, _ in ends)  # type: ignore[arg-type]
    full.channel.setblocking(False)
    full.channel.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    with contextlib.suppress(BlockingIOError):
        while True:
            full.channel.send(b"x" * 4096)
    pool.workers = [full, free]
    with socket.socket() as connection:
        assert pool.hand(connection)
    assert (full.handed, free.handed) == (0, 1)
    assert not full.broken
    ends[1][1].close()  # the free worker's end is gone: it is broken, not skipped
    free.channel.setblocking(False)
    with socket.socket() as connection:
        assert not pool.hand(connection)
    assert free.broken and not full.broken
    for mine, theirs in ends:
        mine.close()
        theirs.close()
