"""Several worker processes serving one port: the supervisor deals out the connections.

Keep-alive clients (a load balancer, a proxy, a connection pool) open their connections
once and send every request over them, so how connections are split over the workers is how
the load is split. uvicorn's `--workers` shares one listening socket, and the worker that
wakes first accepts a whole burst: 28 of 32 connections in a benchmark here. A socket per
worker with `SO_REUSEPORT` spreads them by a hash of each connection, a fair coin per
connection: 23 and 9 of 32 in some runs, and at 1,000 requests a second the worker holding
23 queued its requests while the other had CPU to spare.

So the supervisor (`serve_workers`) listens, accepts every connection itself, and hands it
(its file descriptor, over a Unix socket) to the worker with the fewest open connections,
as Node.js's cluster module deals connections out by default, for the same reason.
Each worker tells the supervisor, over the same Unix socket, how many connections it has
received and how many are still open; the supervisor adds those handed over that the
worker has not counted yet. Once handed over, a connection is the worker's alone.

With as many CPUs as workers or more (Linux, `service.pin_workers`), each worker's request
thread runs on a CPU of its own, taken from the supervisor's allowed CPUs in order; a worker
that replaces a dead one takes its CPU. Left to the scheduler, the two workers of a benchmark
here sometimes queued on one core while the other ran the load generator or nothing: in
alternating 30 s runs at 1,000 requests a second, the p99 was 8.5, 8.7 and 7.5 ms pinned
against 16.3, 15.1 and 13.4 ms unpinned, for the same CPU per answer. Only the thread that
answers requests is pinned, once the app has started: the impression writer, the background
trainer and the threads started before it keep every CPU.

The supervisor also starts a new worker when one dies, and stops them all on SIGINT or
SIGTERM; a worker stops by itself when its supervisor is gone (its Unix socket closes), so
that a killed supervisor leaves no orphan serving an old configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from types import FrameType

import uvicorn

from penchant.errors import ConfigError
from penchant.service.process import APP_FACTORY
from penchant.settings import Settings, settings_environment

logger = logging.getLogger("penchant.service")

#: A worker that dies this many times within `_CRASH_WINDOW_S` stops the service.
_CRASHES = 5
_CRASH_WINDOW_S = 60.0
#: A worker's report: connections received so far, connections open now.
_REPORT = struct.Struct("!II")
_BACKLOG = 2048  # uvicorn's default
#: Connections a worker takes from its Unix socket in one read at most.
_MAX_FDS = 64


def can_deal() -> bool:
    """Whether this system can pass connections between processes (POSIX can)."""
    return os.name == "posix" and hasattr(socket, "send_fds")


def serve_workers(settings: Settings) -> None:
    """Serve `settings.service.workers` worker processes until SIGINT or SIGTERM.

    Raises:
        ConfigError: the port is taken, or workers keep dying (5 within a minute).
    """
    service = settings.service
    listener = _listen(service.host, service.port)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    cpus = worker_cpus(service.workers) if service.pin_workers else [None] * service.workers
    pool = _Pool(multiprocessing.get_context("spawn"), settings_environment(settings))
    try:
        for cpu in cpus:
            pool.add(cpu)
        threading.Thread(target=pool.listen_to_workers, args=(stopping,), daemon=True).start()
        threading.Thread(target=_deal, args=(listener, pool, stopping), daemon=True).start()
        deaths: deque[float] = deque(maxlen=_CRASHES)
        while not stopping.wait(0.5):
            for worker in pool.dead():
                now = time.monotonic()
                deaths.append(now)
                if len(deaths) == _CRASHES and now - deaths[0] < _CRASH_WINDOW_S:
                    raise ConfigError(
                        f"service workers died {_CRASHES} times within a minute "
                        f"(last exit code {worker.process.exitcode})"
                    )
                logger.error(
                    "worker %s exited with %s; starting another",
                    worker.process.pid,
                    worker.process.exitcode,
                )
                pool.replace(worker)
    finally:
        stopping.set()
        listener.close()
        pool.stop()


def worker_cpus(workers: int) -> list[int | None]:
    """The CPU of each worker: the allowed CPUs in order when there are enough of them (and
    more than one worker), otherwise none (the scheduler places them)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if workers < 2 or len(allowed) < workers:
        return [None] * workers
    return list(allowed[:workers])


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket of the service.

    Raises:
        ConfigError: something else listens on the port, or the address is not this host's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(_BACKLOG)
    except OSError as exc:
        listener.close()
        raise ConfigError(
            f"service.port: cannot listen on {host}:{port}: {exc.strerror}",
            field="service.port",
        ) from exc
    return listener


@dataclass(eq=False)
class _Worker:
    """A worker process as the supervisor sees it."""

    process: SpawnProcess
    channel: socket.socket  # the supervisor's end of the worker's Unix socket
    handed: int = 0  # connections handed to it
    received: int = 0  # of those, how many it reported having received
    open: int = 0  # connections it reported open
    cpu: int | None = None  # the CPU its request thread runs on, if pinned
    ready: bool = False  # it reported once: its app has started
    broken: bool = False  # its Unix socket failed: it is dying
    pending: bytes = b""  # a report read in part

    @property
    def load(self) -> int:
        """Its open connections, counting those handed to it that it has not reported."""
        return self.open + self.handed - self.received


class _Pool:
    """The workers, their Unix sockets and their counts (shared by the supervisor's threads)."""

    def __init__(self, context: SpawnContext, env: dict[str, str]) -> None:
        self.context, self.env = context, env
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()

    def add(self, cpu: int | None = None) -> None:
        """Start one more worker (its request thread on `cpu`, if given)."""
        worker = self._start(cpu)
        with self.lock:
            self.workers.append(worker)

    def replace(self, dead: _Worker) -> None:
        """Start a worker in place of a dead one (on its CPU)."""
        worker = self._start(dead.cpu)
        with self.lock:
            self.workers[self.workers.index(dead)] = worker
        self._forget(dead)

    def dead(self) -> list[_Worker]:
        """The workers whose process has exited."""
        with self.lock:
            return [w for w in self.workers if not w.process.is_alive()]

    def hand(self, connection: socket.socket) -> bool:
        """Give a connection to the least loaded worker that takes it; False if none did.

        A worker still starting (loading its models) comes after those serving already.
        """
        with self.lock:
            live = [w for w in self.workers if not w.broken]
            order = sorted(live, key=lambda w: (not w.ready, w.load))
            for worker in order:
                try:
                    socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
                except BlockingIOError:
                    continue  # its Unix socket is full (it is busy or starting): the next one
                except OSError:
                    worker.broken = True  # dying: the supervisor replaces it
                    continue
                worker.handed += 1
                return True
        return False

    def listen_to_workers(self, stopping: threading.Event) -> None:
        """Read the workers' reports until the service stops."""
        while not stopping.is_set():
            for key, _ in self.selector.select(timeout=0.5):
                worker: _Worker = key.data
                try:
                    data = worker.channel.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                with self.lock:
                    if not data:  # the worker is gone
                        worker.broken = True
                        with contextlib.suppress(KeyError, ValueError):
                            self.selector.unregister(worker.channel)
                        continue
                    data = worker.pending + data
                    whole = len(data) - len(data) % _REPORT.size
                    if whole:
                        last = whole - _REPORT.size
                        worker.received, worker.open = _REPORT.unpack_from(data, last)
                        worker.ready = True
                    worker.pending = data[whole:]

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every worker (uvicorn finishes the requests in flight), then wait."""
        with self.lock:
            workers = list(self.workers)
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in workers:
            worker.process.join(timeout_s)
            if worker.process.is_alive():
                worker.process.kill()
            self._forget(worker)

    def _start(self, cpu: int | None) -> _Worker:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = self.context.Process(
            target=_work, args=(theirs, self.env, cpu), name="penchant-worker"
        )
        process.start()
        theirs.close()
        mine.setblocking(False)
        worker = _Worker(process, mine, cpu=cpu)
        self.selector.register(mine, selectors.EVENT_READ, worker)
        return worker

    def _forget(self, worker: _Worker) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(worker.channel)
        worker.channel.close()


def _deal(listener: socket.socket, pool: _Pool, stopping: threading.Event) -> None:
    """Accept connections and hand each to a worker, until the service stops."""
    listener.settimeout(0.5)
    while not stopping.is_set():
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError as exc:
            if stopping.is_set():
                return
            logger.error("cannot accept a connection: %s", exc.strerror)
            time.sleep(0.1)  # e.g. out of file descriptors: let some close
            continue
        with connection:  # the worker has its own copy once handed over
            if not pool.hand(connection):
                logger.error("no worker took a connection; it is closed")


def _work(channel: socket.socket, env: dict[str, str], cpu: int | None = None) -> None:
    """One worker: the app built from `env`, serving the connections its supervisor hands it
    (on `cpu` once started, if given)."""
    os.environ.update(env)
    # Access logs would carry ids in paths; error logs never carry keys or payloads.
    config = uvicorn.Config(APP_FACTORY, factory=True, access_log=False)
    _HandedServer(config, channel, cpu).run()


class _HandedServer(uvicorn.Server):
    """uvicorn serving connections received over a Unix socket instead of a listening one."""

    def __init__(
        self, config: uvicorn.Config, channel: socket.socket, cpu: int | None = None
    ) -> None:
        super().__init__(config)
        self.channel = channel
        self.cpu = cpu
        self.received = 0
        self.adopting = 0  # received, not yet registered by uvicorn's protocol
        self.reported: tuple[int, int] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app and its lifespan; no listening socket
        if self.should_exit:
            return
        if self.cpu is not None:
            # this thread only (Linux pins threads): what the app started keeps every CPU
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {self.cpu})
        loop = asyncio.get_running_loop()
        # what uvicorn's own listening server makes for each connection it accepts
        protocol = functools.partial(
            self.config.http_protocol_class,  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._take, loop, protocol)
        self._report()

    async def on_tick(self, counter: int) -> bool:
        self._report()  # every 0.1 s: connections closed since the last report
        return await super().on_tick(counter)

    def _take(
        self, loop: asyncio.AbstractEventLoop, protocol: Callable[[], asyncio.Protocol]
    ) -> None:
        try:
            data, fds, flags, _ = socket.recv_fds(self.channel, _MAX_FDS, _MAX_FDS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds, flags = b"", [], 0
        if not data and not fds:  # the supervisor is gone
            loop.remove_reader(self.channel.fileno())
            self.should_exit = True
            return
        if flags & getattr(socket, "MSG_CTRUNC", 0):
            logger.error("connections handed over were cut off")
        for fd in fds:
            self.received += 1
            self.adopting += 1
            loop.create_task(self._adopt(loop, protocol, socket.socket(fileno=fd)))
        self._report()

    async def _adopt(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: Callable[[], asyncio.Protocol],
        sock: socket.socket,
    ) -> None:
        """Serve one handed-over connection with uvicorn's HTTP protocol."""
        sock.setblocking(False)
        try:
            await loop.connect_accepted_socket(protocol, sock)
        except OSError:
            sock.close()  # the client left before the worker took it
        finally:
            self.adopting -= 1

    def _report(self) -> None:
        state = (self.received, len(self.server_state.connections) + self.adopting)
        if state == self.reported:
            return
        try:
            self.channel.send(_REPORT.pack(*state))
        except BlockingIOError:
            return  # the supervisor is behind; the next tick reports again
        except OSError:
            self.should_exit = True
            return
        self.reported = state
