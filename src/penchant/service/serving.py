"""The served model per tenant: loaded at start, swapped whole when a new version is active."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa

from penchant.errors import PenchantError, Unavailable
from penchant.jobs.registry import ModelRegistry
from penchant.ranking import Engine, OnlineState
from penchant.schema import Event, Item
from penchant.settings import Settings
from penchant.store import EVENT_TABLE_SCHEMA, Store
from penchant.store.state import StateStore

logger = logging.getLogger("penchant.service")

#: The state key whose value changes whenever a tenant's catalog changes.
CATALOG_VERSION = "catalog:version"
#: The state counter of events received (the background trainer reads how much it grew).
EVENTS_SINCE_TRAINING = "events:since_training"


class ServedModel:
    """One tenant's engine, replaced whole (never mutated) when the active version or the
    catalog changes.

    A request takes the engine once (`engine()`) and uses only it, so no answer mixes two
    versions. Every `refresh_s` a request also checks (one `stat` of the active-version file
    and one state read) whether something changed; if so, a background thread builds the new
    engine while requests keep using the old one, then swaps the reference.
    """

    def __init__(self, settings: Settings, store: Store, state: StateStore, tenant: str) -> None:
        self.settings = settings
        self.store = store
        self.state = state
        self.tenant = tenant
        self.registry = ModelRegistry(settings.data_dir / "models", tenant)
        self._engine: Engine | None = None
        self._seen: tuple[object, object] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._loading = False
        self.last_error: str | None = None

    def engine(self) -> Engine:
        """The engine to answer this request with.

        Raises:
            Unavailable: no model version is active (nothing trained yet).
        """
        now = time.monotonic()
        if now - self._checked >= self.settings.serving.refresh_s:
            self._checked = now
            self._refresh(background=self._engine is not None)
        engine = self._engine
        if engine is None:
            detail = f" ({self.last_error})" if self.last_error else ""
            raise Unavailable(
                f"no model is active for tenant {self.tenant!r}: run `penchant train`{detail}"
            )
        return engine

    def _refresh(self, *, background: bool) -> None:
        """Start (or run) a rebuild when the active version or the catalog changed."""
        seen = (self.registry.marker(), self.state.get(self.tenant, CATALOG_VERSION))
        if seen == self._seen or seen[0] is None:
            return
        with self._lock:
            if self._loading:
                return
            self._loading = True
        if background:
            threading.Thread(target=self._load, args=(seen,), daemon=True).start()
        else:
            self._load(seen)

    def _load(self, seen: tuple[object, object]) -> None:
        try:
            current = self._engine
            if current is not None and self._seen is not None and self._seen[0] == seen[0]:
                engine = current.with_items(self._items())  # only the catalog changed
            else:
                engine = self.build()
            self._engine = engine  # one reference assignment: the swap
            self._seen = seen
            self.last_error = None
            logger.info("serving model version %s for tenant %s", engine.version, self.tenant)
        except PenchantError as exc:
            self.last_error = exc.message
            self._seen = seen  # do not retry a broken version on every request
            logger.error("cannot load the active model: %s", exc.message)
        finally:
            with self._lock:
                self._loading = False

    def build(self) -> Engine:
        """A new engine from the active bundle and the current catalog."""
        bundle = self.registry.load()
        serving = self.settings.serving
        return Engine(
            bundle.version,
            bundle.models,
            self._items(),
            {name: surface.stages for name, surface in self.settings.surfaces.items()},
            default_surface=serving.default_surface,
            ann_min_items=serving.ann_min_items,
            retrieval=serving.retrieval,
            max_k=serving.max_k,
            exclusions=bundle.exclusions,
            prebuilt=bundle.indexes,
        )

    def _items(self) -> list[Item]:
        items: list[Item] = []
        for batch in self.store.catalog.scan_items(self.tenant):
            items.extend(batch)
        return items

    def catalog_changed(self) -> None:
        """Note a catalog write, so that every worker rebuilds its serving catalog."""
        self.state.incr(self.tenant, CATALOG_VERSION)


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

    def contexts(self) -> list[str]:
        """The stored context of each impression, by position: request_id, surface, device,
        position, locale (as `context_json` writes them), the shared fields serialized once."""
        head = {"request_id": self.request_id, "surface": self.surface}
        if self.device is not None:
            head["device"] = self.device
        start = orjson.dumps(head).decode()[:-1] + ',"position":'
        end = (
            "}" if self.locale is None else "," + orjson.dumps({"locale": self.locale}).decode()[1:]
        )
        return [f"{start}{p}{end}" for p in range(len(self.item_ids))]


@dataclass
class Impressions:
    """Served lists become impression events, stored in batches by a background thread.

    Requests only append to a queue (no lock, no wake-up); the thread wakes every
    `interval_s`, builds columnar batches of at most `batch` lists and appends them, so
    recommendation latency never waits for a database write. Impressions carry no event id
    (the server makes each once, so there is nothing to deduplicate): `context.request_id`
    and `context.position` identify them. Impressions still queued when the process is
    killed are lost (they are logs, not acknowledged writes); `close` flushes.
    """

    store: Store
    interval_s: float = 0.2
    batch: int = 1_000
    _queue: deque[tuple[str, ServedList]] = field(default_factory=deque)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
        self._thread.start()

    def log(self, tenant: str, served: ServedList) -> None:
        """Queue the impressions of one served list."""
        self._queue.append((tenant, served))

    def close(self, timeout: float = 10.0) -> None:
        """Store what is queued and stop the thread."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        """Store what was queued when it started (what arrives meanwhile waits for the next
        round, so that batches stay large)."""
        left = len(self._queue)
        while left > 0:
            pending: dict[str, list[ServedList]] = {}
            for _ in range(min(self.batch, left)):
                tenant, served = self._queue.popleft()
                pending.setdefault(tenant, []).append(served)
            left -= self.batch
            for tenant, lists in pending.items():
                self._write(tenant, lists)

    def _write(self, tenant: str, lists: list[ServedList]) -> None:
        sizes = [len(s.item_ids) for s in lists]
        total = sum(sizes)
        table = pa.table(
            {
                "event_id": pa.nulls(total, pa.string()),
                "user_id": pa.array([s.user_id for s in lists]).take(_repeat(sizes)),
                "session_id": pa.array([s.session_id for s in lists]).take(_repeat(sizes)),
                "item_id": [i for s in lists for i in s.item_ids],
                "type": pa.array(["impression"] * total),
                "value": pa.nulls(total, pa.float64()),
                "ts": pa.array([s.ts for s in lists], pa.int64()).take(_repeat(sizes)),
                "context": [c for s in lists for c in s.contexts()],
            },
            schema=EVENT_TABLE_SCHEMA,
        )
        try:
            self.store.events.append_table(tenant, table)
        except PenchantError as exc:
            logger.error("lost %d impressions: %s", table.num_rows, exc.message)


def _repeat(sizes: list[int]) -> pa.Array:
    """Indices that repeat row i `sizes[i]` times."""
    return pa.array(np.repeat(np.arange(len(sizes)), sizes))


@dataclass
class Online:
    """The online state of every tenant, and the count of events since the last training."""

    state: StateStore
    keep: int
    session_ttl_s: float

    def of(self, tenant: str) -> OnlineState:
        """The online state of one tenant."""
        return OnlineState(self.state, tenant, keep=self.keep, session_ttl_s=self.session_ttl_s)

    def record(self, tenant: str, events: list[Event]) -> None:
        """Fold accepted events into the state and count them for the trainer."""
        self.of(tenant).record(events)
        self.state.incr(tenant, EVENTS_SINCE_TRAINING, len(events))


class ServedModels:
    """The served model of every tenant the service has answered for, and the impression log."""

    def __init__(self, settings: Settings, store: Store, state: StateStore) -> None:
        self.settings = settings
        self.store = store
        self.state = state
        self.impressions = Impressions(store) if settings.serving.log_impressions else None
        self._by_tenant: dict[str, ServedModel] = {}
        self._lock = threading.Lock()

    def of(self, tenant: str) -> ServedModel:
        """The served model of a tenant (created on first use)."""
        served = self._by_tenant.get(tenant)
        if served is None:
            with self._lock:
                served = self._by_tenant.setdefault(
                    tenant, ServedModel(self.settings, self.store, self.state, tenant)
                )
        return served

    def start(self) -> None:
        """Load the default tenant's active model now, and start the impression writer."""
        served = self.of(self.settings.tenant)
        served._refresh(background=False)
        if self.impressions is not None:
            self.impressions.start()

    def close(self) -> None:
        """Flush the impression log."""
        if self.impressions is not None:
            self.impressions.close()
