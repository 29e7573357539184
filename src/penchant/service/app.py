"""The FastAPI app: `create_app` for tests and workers, `run` for `penchant serve`."""

from __future__ import annotations

import functools
import gc
import ipaddress
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI
from threadpoolctl import threadpool_limits

from penchant import __version__
from penchant.content.decisions import Decider
from penchant.content.rebuild import rebuild_slot
from penchant.content.slots import Slots
from penchant.errors import ConfigError
from penchant.jobs.erase import lift_guards, rebuild_due
from penchant.jobs.retention import RetentionScheduler, start_retention
from penchant.jobs.store import (
    settings_hasher,
    settings_pseudonyms,
    settings_store,
    tombstone_hash,
)
from penchant.jobs.trainer import BackgroundTrainer
from penchant.privacy.keys import CachedKeys, KeysMarker, RateLimiter
from penchant.schema import EventVocabulary
from penchant.service.errors import install_error_handlers
from penchant.service.experiments import LiveExperiments
from penchant.service.hot import HotRoutes, hot_routes
from penchant.service.limits import BodySizeLimit
from penchant.service.process import APP_FACTORY
from penchant.service.routes import (
    catalog,
    consent,
    decisions,
    events,
    experiments,
    export,
    health,
    privacy,
    recommendations,
    sessions,
    slots,
    templates,
)
from penchant.service.serving import EVENTS_SINCE_TRAINING, Online, ServedModels
from penchant.service.workers import can_deal, serve_workers
from penchant.settings import Settings, load_settings, settings_environment
from penchant.store import Store
from penchant.store.state import StateStore, open_state

GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (Python's default: 700)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the HTTP app; the store is opened by its lifespan, not here.

    Args:
        settings: the settings to serve with; default `load_settings()`, which reads
            `PENCHANT_DATA_DIR` (how uvicorn workers, started from an import string, find
            their data directory). The start-up bind check trusts `settings.service.host`:
            started by uvicorn's own command line, set `PENCHANT_SERVICE__HOST` to match.

    Returns:
        The app, with routes, error mapping and the body size limit installed.
    """
    settings = settings or load_settings()
    app = FastAPI(
        title="Penchant",
        version=__version__,
        description="Self-hosted, privacy-first personalization engine.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.vocabulary = EventVocabulary(settings.events.custom_types)
    # the hot routes first: a request is matched against the routes in order
    routers = (
        recommendations.router,
        decisions.router,
        health.router,
        events.router,
        catalog.items,
        catalog.users,
        privacy.router,
        consent.router,
        export.router,
        sessions.router,
        slots.router,
        templates.router,
        experiments.router,
    )
    for router in routers:
        app.include_router(router)
    # Middleware added first runs innermost: the hot routes see bodies already limited.
    hot = hot_routes(recommendations.router.routes, recommendations.HOT) + hot_routes(
        decisions.router.routes, decisions.HOT
    )
    app.add_middleware(HotRoutes, routes=hot)
    app.add_middleware(BodySizeLimit, max_bytes=settings.service.max_body_bytes)
    # Last, so that its catch-all middleware is the outermost and sees every error.
    install_error_handlers(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    store = settings_store(settings)
    serving: ServedModels | None = None
    trainer: BackgroundTrainer | None = None
    retention: RetentionScheduler | None = None
    blas = pin_threads()
    try:
        check_bind_safety(settings.service.host, store)
        state = open_state(settings.state.url)
        app.state.store = store
        app.state.hasher = settings_hasher(settings)
        app.state.pseudonyms = settings_pseudonyms(settings)
        service = settings.service
        app.state.keys = CachedKeys(
            store.keys, service.key_cache_s, KeysMarker(settings.keys_marker_file)
        )
        # each worker enforces its share of a key's rate
        app.state.limiter = RateLimiter(service.rate_limit / service.workers, service.rate_burst)
        app.state.online = Online(
            state,
            settings.serving.recent_items,
            settings.serving.session_ttl_s,
            tombstone=tombstone_hash(settings),
        )
        serving = app.state.serving = ServedModels(settings, store, state)
        serving.start()
        app.state.slots, app.state.decider = content_decider(settings, store, state, serving)
        app.state.experiments = LiveExperiments(store.experiments, settings.experiments)
        trainer = background_trainer(settings, store, state)
        # Every worker runs its own (daily, when retention is configured): deletes are
        # idempotent, so workers that overlap only find less to delete.
        retention = start_retention(settings)
        _tune_gc()
        yield
    finally:
        if retention is not None:
            retention.stop()
        if trainer is not None:
            trainer.stop()
        if serving is not None:
            serving.close()
        store.close()
        blas.restore_original_limits()


def background_trainer(settings: Settings, store: Store, state: StateStore) -> BackgroundTrainer:
    """Retrain in a separate process on the configured schedule or event count, and when an
    erasure's rebuild of item-side structures is half due (`penchant.jobs.erase`).

    With several workers each runs one; a training already running for the tenant (a file
    lock) makes the others skip theirs, which they log.
    """
    tenant = settings.tenant

    def erasure_due() -> bool:
        lift_guards(store, state, tenant)  # rebuilds served since: guards can go
        return rebuild_due(settings, store, tenant, datetime.now(UTC))

    trainer = BackgroundTrainer(
        settings,
        new_events=lambda: int(state.get(tenant, EVENTS_SINCE_TRAINING) or 0),
        due=erasure_due,
        due_poll_s=min(60.0, settings.privacy.rebuild_deadline_s / 20),
    )
    trainer.start()
    return trainer


def content_decider(
    settings: Settings, store: Store, state: StateStore, serving: ServedModels
) -> tuple[Slots, Decider]:
    """The slots of every tenant and their decider: decisions and rewards are logged with
    the impressions (off the request path), and a slot's statistics missing from the online
    state are rebuilt from that log."""
    slots = Slots(store.content, refresh_s=settings.content.refresh_s)
    decider = Decider(
        slots,
        state,
        serving.log.log_event,
        rebuild=functools.partial(rebuild_slot, store.events, state),
    )
    return slots, decider


def pin_threads() -> threadpool_limits:
    """One BLAS and OpenMP thread per worker: requests run in parallel across workers and
    threads, and a BLAS pool per request would make them fight for the cores (measured: 33
    requests/s with the default pools against 2,200 with one thread, on 2 cores)."""
    return threadpool_limits(limits=1)


def _tune_gc() -> None:
    """Spare the collector work that grows with the heap, not with garbage.

    A batch of 1,000 events allocates tens of thousands of short-lived objects; with the
    default thresholds the collector runs dozens of times per batch and rescans the whole
    start-up heap (app, pydantic and SQLAlchemy internals) in its older generations. Freezing
    what exists at start-up and collecting young objects less often cut the CPU time of
    validating and storing a batch by 15-30% in our measurements; cyclic garbage is still
    collected.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_safety(host: str, store: Store) -> None:
    """Refuse to serve beyond this machine while no API key could protect the service.

    Args:
        host: the address the server binds to.
        store: the store holding the API keys.

    Raises:
        ConfigError: `host` is not a loopback address and no active API key exists.
    """
    if is_loopback(host) or any(k.revoked_at is None for k in store.keys.list_keys()):
        return
    raise ConfigError(
        f"refusing to serve on {host}: no API key exists, so nothing would be protected. "
        "Create an API key first, or bind to 127.0.0.1.",
        field="service.host",
    )


def run(settings: Settings) -> None:
    """Serve the app with uvicorn on `settings.service.host` and `port` until stopped.

    With more than one worker, each worker builds its app from `APP_FACTORY` and reads the
    same settings from the environment; on POSIX systems the supervisor hands each
    connection to the worker with the fewest (`penchant.service.workers`).

    Raises:
        ConfigError: the bind address is unsafe (see `check_bind_safety`).
    """
    service = settings.service
    store = settings_store(settings)  # also migrates once, before any worker starts
    try:
        check_bind_safety(service.host, store)
    finally:
        store.close()
    if service.workers > 1 and can_deal():
        serve_workers(settings)  # connections dealt out to the least busy worker
        return
    # Access logs would carry ids in paths; error logs never carry keys or payloads.
    app: FastAPI | str
    if service.workers > 1:
        os.environ.update(settings_environment(settings))
        app = APP_FACTORY
    else:
        app = create_app(settings)
    uvicorn.run(
        app,
        host=service.host,
        port=service.port,
        workers=service.workers,
        factory=service.workers > 1,
        access_log=False,
    )
