"""The served model per tenant: loaded at start, swapped whole when a new version is active."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from penchant.errors import PenchantError, Unavailable
from penchant.jobs.erase import GONE_PREFIX
from penchant.jobs.registry import ModelRegistry
from penchant.ranking import Engine, OnlineState
from penchant.schema import Event, Item
from penchant.service.impressions import Impressions, StoreAddress
from penchant.service.preferences import ensure_mirrored
from penchant.settings import Settings
from penchant.store import Store
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

        Every `refresh_s` this also makes sure the tenant's consent and controls are
        mirrored into the online state (`penchant.service.preferences`).

        Raises:
            Unavailable: no model version is active (nothing trained yet).
        """
        now = time.monotonic()
        if now - self._checked >= self.settings.serving.refresh_s:
            self._checked = now
            ensure_mirrored(self.store, self.state, self.tenant)
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

    def catalog_changed(self, items: Sequence[Item] = ()) -> None:
        """Note a catalog write, so that every worker rebuilds its serving catalog within
        `refresh_s`.

        When the write only added items, this worker first appends them to the catalog it
        serves, so that its next request can already recommend them; a write that changed
        or deleted items waits for the rebuild, which reads the whole catalog.
        """
        self.state.incr(self.tenant, CATALOG_VERSION)
        engine = self._engine
        if engine is None or not items:
            return
        try:
            self._engine = engine.with_new_items(items)
        except ValueError:
            return  # not all new: the rebuild brings them
        except Exception:  # the write is stored: serving catches up with the rebuild
            logger.exception("cannot add new items to the served catalog; the rebuild will")


@dataclass
class Online:
    """The online state of every tenant, and the count of events since the last training.

    Attributes:
        state: the state store.
        keep: recent items kept per person and session.
        session_ttl_s: how long a quiet session is kept.
        tombstone: the keyed hash erasure tombstones hold, `(tenant, user) -> hex`.
    """

    state: StateStore
    keep: int
    session_ttl_s: float
    tombstone: Callable[[str, str], str] | None = None

    def erased(self, tenant: str, user_id: str) -> bool:
        """Whether a person was erased and the retraining without them is not served yet:
        then no worker may rank from their rows, which may still be in its memory."""
        if self.tombstone is None:
            return False
        return self.state.get(tenant, GONE_PREFIX + self.tombstone(tenant, user_id)) is not None

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
        address = StoreAddress(
            settings.store_url, settings.store.synchronous, settings.store.busy_timeout_ms
        )
        #: stores what the service logs off the request path: decisions always, served
        #: lists as impressions when `serving.log_impressions` is on
        self.log = Impressions(address)
        self.impressions = self.log if settings.serving.log_impressions else None
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

    def forget_user(self, tenant: str, user_id: str) -> int:
        """Erase a person from this process's loaded engine; return how many models knew them."""
        served = self._by_tenant.get(tenant)
        engine = None if served is None else served._engine
        return 0 if engine is None else engine.forget_user(user_id)

    def start(self) -> None:
        """Load the default tenant's active model now, and start the log writer."""
        served = self.of(self.settings.tenant)
        served._refresh(background=False)
        self.log.start()

    def close(self) -> None:
        """Flush the log (impressions, decisions, rewards)."""
        self.log.close()
