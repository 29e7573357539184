"""Several worker processes serving one port, each on its own listening socket.

uvicorn's `--workers` shares one listening socket among its workers, and the worker that
wakes first accepts a whole burst of new connections. With keep-alive clients (a load
balancer, a proxy, a connection pool) one worker can hold most of the connections: 28 of
32 in a benchmark here, while the other worker had spare CPU and its share of requests
queued behind. With `SO_REUSEPORT` every worker binds its own socket to the port and Linux
spreads new connections over them by a hash of each connection.

The supervisor (`serve_workers`) starts the workers, starts a new one when one dies, and
stops them all on SIGINT or SIGTERM. A worker stops by itself when its supervisor is gone,
so that a killed supervisor leaves no orphan serving an old configuration.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
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


def reuse_port() -> bool:
    """Whether the kernel balances connections over sockets sharing a port (Linux does;
    other systems with `SO_REUSEPORT` hand every connection to one socket)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def serve_workers(settings: Settings) -> None:
    """Serve `settings.service.workers` worker processes until SIGINT or SIGTERM.

    Raises:
        ConfigError: the port is taken (sockets sharing a port would otherwise split its
            connections with whatever holds it), or workers keep dying (5 within a minute).
    """
    service = settings.service
    _check_free(service.host, service.port)
    env = settings_environment(settings)
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    workers = [_start(context, service.host, service.port, env) for _ in range(service.workers)]
    deaths: deque[float] = deque(maxlen=_CRASHES)
    try:
        while not stopping.wait(0.5):
            for i, worker in enumerate(workers):
                if worker.is_alive() or stopping.is_set():
                    continue
                now = time.monotonic()
                deaths.append(now)
                if len(deaths) == _CRASHES and now - deaths[0] < _CRASH_WINDOW_S:
                    raise ConfigError(
                        f"service workers died {_CRASHES} times within a minute "
                        f"(last exit code {worker.exitcode}); is port {service.port} in use?"
                    )
                logger.error(
                    "worker %s exited with %s; starting another", worker.pid, worker.exitcode
                )
                workers[i] = _start(context, service.host, service.port, env)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()


def _check_free(host: str, port: int) -> None:
    """Bind the port once without `SO_REUSEPORT`: that fails while anything listens on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"service.port: cannot listen on {host}:{port}: {exc.strerror}",
                field="service.port",
            ) from exc


def _start(context: SpawnContext, host: str, port: int, env: dict[str, str]) -> SpawnProcess:
    process = context.Process(
        target=_worker, args=(host, port, env, os.getpid()), name="penchant-worker"
    )
    process.start()
    return process


def _worker(host: str, port: int, env: dict[str, str], parent: int) -> None:
    """One worker: its own socket on the shared port, and the app built from `env`."""
    os.environ.update(env)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    # Access logs would carry ids in paths; error logs never carry keys or payloads.
    server = uvicorn.Server(uvicorn.Config(APP_FACTORY, factory=True, access_log=False))
    threading.Thread(target=_follow, args=(server, parent), daemon=True).start()
    server.run(sockets=[sock])


def _follow(server: uvicorn.Server, parent: int) -> None:
    """Stop the worker once its supervisor is gone (it would be re-parented)."""
    while not server.should_exit:
        if os.getppid() != parent:
            server.should_exit = True
            return
        time.sleep(1.0)
