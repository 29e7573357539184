"""The impression log: every served list becomes impression events, written off the hot path.

A request only appends its list to a queue (no lock, no wake-up). Every `interval_s` a thread
of the worker hands what is queued to a writer process, which builds columnar batches and
appends them to the store at a lower CPU priority. Writing from a thread of the worker, as
the first version did, held the worker's GIL for milliseconds at a time and cost it about
0.15 ms of CPU per list: at 1,000 requests a second on two cores, the requests queued behind
it. In a process of its own, scheduled on Linux only when a CPU is otherwise idle
(`SCHED_IDLE`), the impressions use the CPU the workers leave: at 1,000 requests a second on
two cores, the writer at nice 10 still took its share at the workers' expense (p99 67 ms in
one benchmark run, against 16 ms as an idle-time process in the next; runs vary, see
docs/benchmarks.md). A service saturated for long leaves it little CPU: lists then wait in
the worker (up to `max_queued`).

Lists go to the writer once a second by default: storing a batch has a fixed cost (encoding
ids, a transaction, its sync), and the writer spent 0.16 ms of CPU per list in batches of 100
and 0.10 ms in batches of 500, in a measurement here.

Impressions carry no event id (the service makes each once, so there is nothing to
deduplicate): `context.request_id` and `context.position` identify them. They are logs, not
acknowledged writes: those still queued when a worker is killed are lost, and past
`max_queued` lists waiting (the writer cannot keep up) new ones are dropped and counted in
the log. `close` stores everything queued.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from penchant.errors import PenchantError
from penchant.schema import Event
from penchant.store import EVENT_TABLE_SCHEMA, Store, Synchronous, events_to_table, open_store

logger = logging.getLogger("penchant.service")


@dataclass(frozen=True)
class ServedList:
    """One served list, as its impressions will be stored."""

    request_id: str
    user_id: str | None
    session_id: str | None
    item_ids: list[str]
    surface: str
    device: str | None
    locale: str | None
    ts: int  # microseconds since the epoch
    #: The experiment and arm it was served under (`penchant.service.experiments`), if any.
    attributes: dict[str, Any] | None = None
    #: For an interleaved list, the arm whose team placed each position's item.
    teams: list[str] | None = None

    def contexts(self) -> list[str]:
        """The stored context of each impression, by position: request_id, surface, device,
        position, locale and attributes (as `context_json` writes them), the shared fields
        serialized once."""
        head = {"request_id": self.request_id, "surface": self.surface}
        if self.device is not None:
            head["device"] = self.device
        start = orjson.dumps(head).decode()[:-1] + ',"position":'
        if self.teams is not None:
            return [
                f"{start}{p}{self._end({**(self.attributes or {}), 'team': team})}"
                for p, team in enumerate(self.teams)
            ]
        end = self._end(self.attributes)
        return [f"{start}{p}{end}" for p in range(len(self.item_ids))]

    def _end(self, attributes: dict[str, Any] | None) -> str:
        tail: dict[str, Any] = {}
        if self.locale is not None:
            tail["locale"] = self.locale
        if attributes:
            tail["attributes"] = attributes
        return "," + orjson.dumps(tail).decode()[1:] if tail else "}"


@dataclass(frozen=True)
class StoreAddress:
    """How the writer process opens the store (the worker's own connection stays there)."""

    url: str
    synchronous: Synchronous = "FULL"
    busy_timeout_ms: int = 30_000


@dataclass
class Impressions:
    """The impression log of one worker process (see the module docstring).

    Attributes:
        store: where the writer process stores the impressions.
        interval_s: how often queued lists go to the writer.
        batch: lists per message to the writer (and per stored batch at most).
        nice: how much lower the writer's CPU priority is than the worker's.
        idle: on Linux, run the writer only on CPU time nothing else wants (`SCHED_IDLE`).
        max_queued: lists waiting at most; beyond, new ones are dropped.
    """

    store: StoreAddress
    interval_s: float = 1.0
    batch: int = 1_000
    nice: int = 10
    idle: bool = True
    max_queued: int = 200_000
    dropped: int = 0
    _queue: deque[tuple[str, ServedList | Event]] = field(default_factory=deque)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _writer: SpawnProcess | None = None
    _pipe: Connection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start the writer process and the thread handing lists on to it.

        The writer starts now rather than with the first list: starting a Python process
        takes a second of CPU, which the first requests would otherwise wait behind.
        """
        self._stop.clear()
        self._connection()
        self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
        self._thread.start()

    def log(self, tenant: str, served: ServedList) -> None:
        """Queue the impressions of one served list."""
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            return
        self._queue.append((tenant, served))

    def log_event(self, tenant: str, event: Event) -> None:
        """Queue one event the service itself makes (a bandit decision, a reward), to be
        stored the same way, off the request's path."""
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            return
        self._queue.append((tenant, event))

    def close(self, timeout: float = 30.0) -> None:
        """Store what is queued, then stop the thread and the writer."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            if self._pipe is not None:
                with contextlib.suppress(OSError):
                    self._pipe.send(None)
                self._pipe.close()
                self._pipe = None
            if self._writer is not None:
                self._writer.join(timeout)
                if self._writer.is_alive():
                    self._writer.terminate()
                self._writer = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._hand_on()
        self._hand_on()

    def _hand_on(self) -> None:
        """Send what was queued when it started (later lists wait for the next round)."""
        if self.dropped:
            logger.warning("dropped %d impression lists: the writer fell behind", self.dropped)
            self.dropped = 0
        left = len(self._queue)
        while left > 0:
            chunk = [self._queue.popleft() for _ in range(min(self.batch, left))]
            left -= len(chunk)
            try:
                self._connection().send(chunk)
            except (OSError, EOFError) as exc:  # the writer died: start another next time
                logger.error("lost %d impression lists: %s", len(chunk), exc)
                self._reset()

    def _connection(self) -> Connection:
        with self._lock:
            if self._pipe is None or self._writer is None or not self._writer.is_alive():
                self._reset_locked()
                source, self._pipe = multiprocessing.Pipe(duplex=False)
                self._writer = multiprocessing.get_context("spawn").Process(
                    target=write_impressions,
                    args=(self.store, source),
                    name="penchant-impressions",
                    daemon=True,
                )
                self._writer.start()
                # lowered from here at once, so that even its start-up (imports) yields
                assert self._writer.pid is not None
                lower_priority(self._writer.pid, self.nice, self.idle)
                source.close()
            return self._pipe

    def _reset(self) -> None:
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._writer is not None:
            if self._writer.is_alive():
                self._writer.terminate()
            self._writer.join(5)
            self._writer = None


def lower_priority(pid: int, nice: int, idle: bool) -> None:
    """Run a process `nice` steps below this one and, with `idle` on Linux, only on CPU time
    nothing else wants (`SCHED_IDLE`). Lowering a priority needs no privilege."""
    with contextlib.suppress(OSError):
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, ours + nice))
    if idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def write_impressions(address: StoreAddress, source: Connection) -> None:
    """The writer process: store the lists it receives until None or its worker is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the worker's close() flushes
    store = open_store(
        address.url,
        synchronous=address.synchronous,
        busy_timeout_ms=address.busy_timeout_ms,
    )
    try:
        while True:
            try:
                chunk = source.recv()
            except EOFError:  # the worker is gone
                return
            if chunk is None:
                return
            by_tenant: dict[str, list[ServedList]] = {}
            events: dict[str, list[Event]] = {}
            for tenant, served in chunk:
                if isinstance(served, ServedList):
                    by_tenant.setdefault(tenant, []).append(served)
                else:
                    events.setdefault(tenant, []).append(served)
            for tenant, lists in by_tenant.items():
                store_lists(store, tenant, lists)
            for tenant, made in events.items():
                store_events(store, tenant, made)
    finally:
        store.close()


def store_events(store: Store, tenant: str, events: list[Event]) -> None:
    """Append events the service made (logged, never raised)."""
    try:
        store.events.append_table(tenant, events_to_table(events))
    except PenchantError as exc:
        logger.error("lost %d logged events: %s", len(events), exc.message)


def store_lists(store: Store, tenant: str, lists: list[ServedList]) -> None:
    """Append the impressions of served lists, one row per item (logged, never raised)."""
    sizes = [len(s.item_ids) for s in lists]
    total = sum(sizes)
    rows = pa.array(np.repeat(np.arange(len(sizes)), sizes))
    table = pa.table(
        {
            "event_id": pa.nulls(total, pa.string()),
            "user_id": pa.array([s.user_id for s in lists]).take(rows),
            "session_id": pa.array([s.session_id for s in lists]).take(rows),
            "item_id": [i for s in lists for i in s.item_ids],
            "type": pa.array(["impression"] * total),
            "value": pa.nulls(total, pa.float64()),
            "ts": pa.array([s.ts for s in lists], pa.int64()).take(rows),
            "context": [c for s in lists for c in s.contexts()],
        },
        schema=EVENT_TABLE_SCHEMA,
    )
    try:
        store.events.append_table(tenant, table)
    except PenchantError as exc:
        logger.error("lost %d impressions: %s", table.num_rows, exc.message)
