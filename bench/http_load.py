"""A light HTTP load generator for `POST /v1/recommendations` or `/v1/decisions`: keep-alive,
closed or open loop.

`--concurrency` connections, each sending its next request as soon as the previous answer
is read (closed loop), or with `--rate R` requests due on a fixed schedule of R a second,
each sent by the next free connection (open loop: a request's latency counts from when it
was due, so time spent waiting for a free connection is measured, not hidden), from one
asyncio loop (uvloop where installed) over plain sockets (an asyncio Protocol) with a
hand-written HTTP/1.1 exchange, so that the generator costs the machine little CPU. Every
request asks for `--k` items for a random known user (`u0000000`.. `--users`) with the
serving benchmark's filters. It stops after `--requests` measured requests or `--seconds`
seconds, whichever comes first, after `--warmup` requests that are not measured.

With `--get /health` it sends that instead: what the HTTP stack costs on its own.

With `--decisions SLOT` it asks `POST /v1/decisions` instead: each body is
`{"slot": SLOT, "user_id": <random known user>, "context": {"device": <mobile, desktop or
tablet>, "segment": <one of --segments>}}` (no segment without `--segments`). With
`--reward-share S` a share S of the decisions answered (warm-up included) is followed by a
click that carries the decision's id back (`POST /v1/events`, `context.decision_id`), as
outcomes teach a policy while it serves. Clicks go out over `--event-connections`
connections of their own, are not measured, and are all answered before the run ends; the
JSON counts them (`clicks`: sent, ok, errors) and the decisions answered during warm-up
(`warmup_ok`), so that a caller can check the policy's statistics against them.

The API key comes from the environment variable PENCHANT_BENCH_KEY (not the command line,
where any process could read it). Prints JSON: requests, errors (non-200 answers and
broken connections), empty (200 answers without items), throughput_rps, p50/p95/p99/max
and mean ms, wall_s, and the generator's own CPU seconds, on the line after the line
`measuring` (printed when warm-up ends). With `--trace FILE` it also writes each measured
answer's due time (Unix seconds, to line up with the server's logs) and latency as CSV:
when the slow answers came.

    PENCHANT_BENCH_KEY=pk_... .venv/bin/python bench/http_load.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import time
from typing import Any

#: The filters of every request (availability is always on).
FILTERS = {"attributes": {"price": {"max": 600}}, "exclude_categories": ["c03"]}
#: The devices a decision's context names, drawn uniformly.
DEVICES = ("mobile", "desktop", "tablet")


class _Answers(asyncio.Protocol):
    """Reads HTTP/1.1 answers off one connection as they arrive (a Protocol rather than
    streams: no stream reader, and one future per answer rather than one per read)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._deliver()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("the server closed it"))

    def _deliver(self) -> None:
        """Complete the waiting request once its whole answer is in the buffer."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.closed = True
            elif name == b"transfer-encoding":
                self.waiter.set_exception(ValueError("chunked answers are not supported"))
                return
        start = end + 4
        if len(self.buffer) < start + length:
            return
        body = bytes(self.buffer[start : start + length])
        del self.buffer[: start + length]
        self.waiter.set_result((status, body))


class Client:
    """One keep-alive connection."""

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self.host, self.port, self.head = host, port, head
        self.answers: _Answers | None = None

    async def connect(self) -> None:
        """(Re)open the connection."""
        self.close()
        loop = asyncio.get_running_loop()
        _, self.answers = await loop.create_connection(_Answers, self.host, self.port)

    def close(self) -> None:
        """Drop the connection."""
        if self.answers is not None and self.answers.transport is not None:
            self.answers.transport.close()
        self.answers = None

    async def post(self, body: bytes | None) -> tuple[int, bytes]:
        """Send one request (`head` alone when body is None) and read its answer."""
        if self.answers is None or self.answers.closed:
            await self.connect()
        answers = self.answers
        assert answers is not None and answers.transport is not None
        answers.waiter = asyncio.get_running_loop().create_future()
        if body is None:
            answers.transport.write(self.head)
        else:
            answers.transport.write(self.head + b"%d\r\n\r\n" % len(body) + body)
        answered = await answers.waiter
        answers.waiter = None
        if answers.closed:
            self.close()
        return answered


def body_for(rng: random.Random, users: int, k: int) -> bytes:
    """A request body for a random known user (the JSON of `{"user_id", "k", "filters"}`)."""
    return b'{"user_id":"u%07d","k":%d,"filters":%s}' % (rng.randrange(users), k, _FILTERS_JSON)


_FILTERS_JSON = json.dumps(FILTERS, separators=(",", ":")).encode()


def decision_body(
    rng: random.Random, slot: str, users: int, segments: list[str]
) -> tuple[bytes, str]:
    """A decision request for a random known user on a random device (and segment, when
    there are any), and that user's id."""
    user = f"u{rng.randrange(users):07d}"
    context: dict[str, str] = {"device": rng.choice(DEVICES)}
    if segments:
        context["segment"] = rng.choice(segments)
    body = {"slot": slot, "user_id": user, "context": context}
    return json.dumps(body, separators=(",", ":")).encode(), user


def click_body(user: str, decision_id: str) -> bytes:
    """A batch of one click on a decision (its id makes the event's id, so a repeat would be
    stored once)."""
    event = {
        "event_id": f"click-{decision_id}",
        "user_id": user,
        "type": "click",
        "context": {"decision_id": decision_id},
    }
    return json.dumps({"events": [event]}, separators=(",", ":")).encode()


class Clicks:
    """Click events sent beside the measured load, over connections of their own."""

    def __init__(self, host: str, port: int, key: str, connections: int) -> None:
        self.head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            "Content-Length: "
        ).encode()
        self.clients = [Client(host, port, self.head) for _ in range(connections)]
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.counts = {"sent": 0, "ok": 0, "errors": 0}
        self.first_error: str | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, gap_s: float) -> None:
        """Open the connections and start sending what is queued."""
        for client in self.clients:
            await client.connect()
            await asyncio.sleep(gap_s)
        self.tasks = [asyncio.create_task(self._send(c)) for c in self.clients]

    def add(self, body: bytes) -> None:
        """Queue one click."""
        self.queue.put_nowait(body)

    async def _send(self, client: Client) -> None:
        while True:
            body = await self.queue.get()
            self.counts["sent"] += 1
            try:
                status, data = await client.post(body)
            except (OSError, ValueError) as exc:
                client.close()
                status, data = 0, repr(exc).encode()
            # stored 1, or 0 as a duplicate: either way the server took it
            if status == 200:
                self.counts["ok"] += 1
            else:
                self.counts["errors"] += 1
                if self.first_error is None:
                    self.first_error = f"{status}: {data[:300].decode(errors='replace')}"
            self.queue.task_done()

    async def stop(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until every queued click is answered (at most `timeout_s`), close, and
        return the counts."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout_s)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            client.close()
        return {**self.counts, "unsent": self.queue.qsize(), "first_error": self.first_error}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then measure; return the measurements."""
    key = os.environ.get("PENCHANT_BENCH_KEY", "")
    path = "/v1/decisions" if args.decisions else "/v1/recommendations"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        "Content-Length: "
    ).encode()
    if args.get:
        head = f"GET {args.get} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n".encode()
    rng = random.Random(args.seed)
    # a generator of its own, so that the requests drawn do not depend on the answers
    click_rng = random.Random(args.seed + 1)
    segments = [s for s in (args.segments or "").split(",") if s]
    clients = [Client(args.host, args.port, head) for _ in range(args.concurrency)]
    for client in clients:  # one at a time, so that each worker gets its share of them
        await client.connect()
        await asyncio.sleep(args.connect_gap_ms / 1000)
    clicks = None
    if args.decisions and args.reward_share > 0:
        clicks = Clicks(args.host, args.port, key, args.event_connections)
        await clicks.start(args.connect_gap_ms / 1000)
    latencies: list[float] = []
    trace: list[tuple[float, float]] = []  # (due, latency) of each measured answer
    counts = {"sent": 0, "errors": 0, "empty": 0, "warmup_ok": 0}
    first_error: list[str] = []

    async def exchange(client: Client, since: float, record: bool) -> None:
        """One request; its latency counts from `since` (when it was due to be sent)."""
        user = ""
        if args.get:
            body = None
        elif args.decisions:
            body, user = decision_body(rng, args.decisions, args.users, segments)
        else:
            body = body_for(rng, args.users, args.k)
        try:
            status, data = await client.post(body)
        except (OSError, ValueError) as exc:
            client.close()
            status, data = 0, repr(exc).encode()
        elapsed = time.perf_counter() - since
        if clicks is not None and status == 200 and click_rng.random() < args.reward_share:
            clicks.add(click_body(user, json.loads(data)["decision_id"]))
        if not record:
            counts["warmup_ok"] += status == 200
            return
        if status != 200:
            counts["errors"] += 1
            if not first_error:
                first_error.append(f"{status}: {data[:300].decode(errors='replace')}")
            return
        latencies.append(elapsed)
        trace.append((since, elapsed))
        if not args.get and b'"items":[]' in data:
            counts["empty"] += 1

    async def loop(client: Client, budget: int, deadline: float, record: bool) -> None:
        """Closed loop: the next request as soon as the answer is read."""
        while counts["sent"] < budget and time.monotonic() < deadline:
            counts["sent"] += 1
            await exchange(client, time.perf_counter(), record)

    async def paced(budget: int, seconds: float, record: bool) -> None:
        """Open loop: request i is due at i / rate seconds. A connection that is free takes
        the next request not yet taken and sends it when due, as a client's connection pool
        would; a request that no connection was free to take goes out late, and its latency
        still counts from when it was due (no coordinated omission)."""
        start = time.perf_counter()
        total = min(budget, int(seconds * args.rate))
        taken = 0

        async def connection(client: Client) -> None:
            nonlocal taken
            while taken < total:
                due = start + taken / args.rate
                taken += 1
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                counts["sent"] += 1
                await exchange(client, due, record)

        await asyncio.gather(*(connection(c) for c in clients))

    far = time.monotonic() + 600
    if args.rate:
        await paced(args.warmup, 600.0, False)
    else:
        await asyncio.gather(*(loop(c, args.warmup, far, False) for c in clients))
    counts.update(sent=0, errors=0, empty=0)  # warmup_ok stays: the warm-up's decisions
    print("measuring", flush=True)  # tells a watching process that warm-up is over
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    began_unix = time.time()
    if args.rate:
        await paced(args.requests, args.seconds, True)
    else:
        deadline = time.monotonic() + args.seconds
        await asyncio.gather(*(loop(c, args.requests, deadline, True) for c in clients))
    wall = time.perf_counter() - began
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for client in clients:
        client.close()
    clicked = await clicks.stop() if clicks is not None else None
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    latencies.sort()
    if args.trace:
        with open(args.trace, "w") as out:
            out.write("due_unix_s,latency_ms\n")
            out.writelines(
                f"{began_unix + due - began:.6f},{lat * 1000:.3f}\n" for due, lat in trace
            )

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    result = {
        "requests": len(latencies) + counts["errors"],
        "ok": len(latencies),
        "errors": counts["errors"],
        "first_error": first_error[0] if first_error else None,
        "empty": counts["empty"],
        "concurrency": args.concurrency,
        "offered_rps": args.rate or None,
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 1) if wall else 0.0,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else float("nan"),
        "mean_ms": round(sum(latencies) / len(latencies) * 1000, 2) if latencies else float("nan"),
        "loadgen_cpu_s": round(cpu, 2),
        "loadgen_cpu_pct": round(100 * cpu / wall, 1) if wall else 0.0,
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }
    if args.decisions:
        result.update(slot=args.decisions, warmup_ok=counts["warmup_ok"], clicks=clicked)
    return result


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--requests", type=int, default=30_000, help="measured requests at most")
    parser.add_argument("--seconds", type=float, default=30.0, help="measure this long at most")
    parser.add_argument("--warmup", type=int, default=500, help="requests sent first, unmeasured")
    parser.add_argument("--users", type=int, default=1_000_000, help="known users to draw from")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--connect-gap-ms", type=float, default=10.0, help="between connects")
    parser.add_argument("--get", metavar="PATH", help="GET this path instead (e.g. /health)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trace", metavar="CSV", help="write each answer's due time and latency")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="open loop at this many requests/s (0: closed)"
    )
    parser.add_argument("--decisions", metavar="SLOT", help="ask POST /v1/decisions for SLOT")
    parser.add_argument("--segments", help="segments to draw from, comma-separated (decisions)")
    parser.add_argument(
        "--reward-share",
        type=float,
        default=0.0,
        help="share of decisions followed by a click carrying their id (not measured)",
    )
    parser.add_argument(
        "--event-connections", type=int, default=2, help="connections that send the clicks"
    )
    args = parser.parse_args()
    if args.decisions and args.get:
        parser.error("--decisions and --get ask for different things: give one")
    if not 0.0 <= args.reward_share <= 1.0:
        parser.error("--reward-share must be in [0, 1]")
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(run(args))))


if __name__ == "__main__":
    main()
