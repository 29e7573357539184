"""The one place that opens a deployment's store from its settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from penchant.settings import Settings
from penchant.store import Store, open_store


def settings_store(settings: Settings) -> Store:
    """Open (and migrate) the store the settings name, with their durability options."""
    return open_store(
        settings.store_url,
        synchronous=settings.store.synchronous,
        busy_timeout_ms=settings.store.busy_timeout_ms,
    )


@contextmanager
def opened_store(settings: Settings) -> Iterator[Store]:
    """`settings_store`, closed when the block ends."""
    store = settings_store(settings)
    try:
        yield store
    finally:
        store.close()
