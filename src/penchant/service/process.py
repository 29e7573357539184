"""Start the real HTTP service in a subprocess: for the demo, end-to-end tests and benchmarks."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

#: What uvicorn imports in each worker process.
APP_FACTORY = "penchant.service.app:create_app"


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path,
    port: int,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Run `uvicorn` on the service's app factory and return once it answers /health.

    Args:
        data_dir: the data directory the server uses (`PENCHANT_DATA_DIR`).
        port: the loopback port to listen on.
        workers: uvicorn worker processes.
        env: more environment variables for the server.
        log: a file that receives the server's output (appended); default: inherited.
        timeout_s: how long to wait for /health.

    Returns:
        The running server process; the caller stops it.

    Raises:
        RuntimeError: the server exited or did not answer in time (it is killed then).
    """
    environment = os.environ | {"PENCHANT_DATA_DIR": str(data_dir)} | (env or {})
    if workers > 1:  # `penchant serve`: one listening socket per worker (service.workers)
        command = [sys.executable, "-m", "penchant", "serve", "--data-dir", str(data_dir)]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    else:
        command = [sys.executable, "-m", "uvicorn", "--factory", APP_FACTORY]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        command += ["--no-access-log", "--log-level", "warning"]
    if log is None:
        server = subprocess.Popen(command, env=environment)
    else:
        with log.open("ab") as out:
            server = subprocess.Popen(command, env=environment, stdout=out, stderr=out)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the server did not answer /health within {timeout_s:.0f} s")
