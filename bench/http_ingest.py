"""HTTP ingestion throughput: batches of events posted to a real server on loopback.

Starts `uvicorn penchant.service.app:create_app` on a SQLite store in a temporary directory
(synchronous=FULL), posts pre-built batches from a few keep-alive connections, and prints
JSON: events_per_s, batches, p50_ms, p99_ms, server_peak_rss_mb. It stops by itself after
`--batches` batches or `--seconds` seconds, whichever comes first.

    .venv/bin/python bench/http_ingest.py --clients 3 --batch 1000 --batches 150
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from penchant.privacy.keys import create_key
from penchant.settings import load_settings
from penchant.store import open_store
from penchant.testing.server import free_port, start_server

TYPES = ("view", "view", "view", "click", "click", "add_to_cart", "purchase", "impression")


def make_bodies(count: int, size: int, seed: int = 7) -> list[bytes]:
    """`count` batch bodies of `size` events, every event with its own id."""
    rng = random.Random(seed)
    start = 1_714_000_000
    bodies = []
    for b in range(count):
        events: list[dict[str, Any]] = []
        for i in range(size):
            event: dict[str, Any] = {
                "event_id": f"b{b}-{i}",
                "user_id": f"u{int(rng.paretovariate(1.2)) % 20_000}",
                "item_id": f"i{int(rng.paretovariate(1.1)) % 5_000}",
                "type": rng.choice(TYPES),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + b * size + i)),
                "context": {"request_id": f"r{b}-{i // 10}", "position": i % 10},
            }
            if rng.random() < 0.5:
                event["session_id"] = f"s{b}-{i // 25}"
                event["context"]["surface"] = "home"
            events.append(event)
        bodies.append(orjson.dumps({"events": events}))
    return bodies


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process and its children (uvicorn workers), in MiB."""
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        pids += [int(p) for p in task.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


def post(conn: http.client.HTTPConnection, body: bytes, key: str) -> dict[str, Any]:
    """POST one batch; fail loudly on anything but 200."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request("POST", "/v1/events", body=body, headers=headers)
    answer = conn.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"HTTP {answer.status}: {data[:300]!r}")
    result: dict[str, Any] = orjson.loads(data)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, post the batches, stop the server; return the measurements."""
    bodies = make_bodies(args.batches + args.clients, args.batch)
    warmup, bodies = bodies[: args.clients], bodies[args.clients :]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        store = open_store(load_settings(data_dir).store_url)
        key = create_key(store.keys, "default", ["events:write"], name="bench")
        store.close()
        port = free_port()
        server = start_server(
            data_dir, port, workers=args.workers, env={"PENCHANT_STORE__SYNCHRONOUS": "FULL"}
        )
        try:
            conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in warmup]
            for conn, body in zip(conns, warmup, strict=True):
                post(conn, body, key)
            queue = iter(bodies)
            lock = threading.Lock()
            latencies: list[float] = []
            stored = [0]
            deadline = time.monotonic() + args.seconds

            def client(conn: http.client.HTTPConnection) -> None:
                while time.monotonic() < deadline:
                    with lock:
                        body = next(queue, None)
                    if body is None:
                        return
                    began = time.perf_counter()
                    result = post(conn, body, key)
                    elapsed = time.perf_counter() - began
                    with lock:
                        latencies.append(elapsed)
                        stored[0] += result["stored"]

            threads = [threading.Thread(target=client, args=(c,)) for c in conns]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
            rss = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies.sort()
    return {
        "events_per_s": round(stored[0] / wall),
        "batches": len(latencies),
        "batch_size": args.batch,
        "clients": args.clients,
        "workers": args.workers,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000, 1),
        "server_peak_rss_mb": rss,
    }


def main() -> None:
    """Parse arguments, run once, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3, help="concurrent connections")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch")
    parser.add_argument("--batches", type=int, default=150, help="batches to send at most")
    parser.add_argument("--seconds", type=float, default=30.0, help="stop sending after this")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    print(orjson.dumps(run(parser.parse_args())).decode())


if __name__ == "__main__":
    main()
