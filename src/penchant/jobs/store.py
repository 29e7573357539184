"""The one place that opens a deployment's store from its settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from penchant.data import Dataset, Weighting, impression_log
from penchant.errors import InvalidInput
from penchant.models.text import item_text
from penchant.privacy.hashing import Hasher, load_secret
from penchant.privacy.pseudonyms import Pseudonyms, check_store
from penchant.settings import Settings
from penchant.store import EventFilter, Store, TombstoneHash, open_store


def settings_hasher(settings: Settings) -> Hasher:
    """The keyed hashes of the deployment, from its privacy secret (created on first use)."""
    return Hasher(load_secret(settings.privacy_secret_file))


def tombstone_hash(settings: Settings) -> TombstoneHash:
    """The keyed hash of `(tenant, user_id)` that erasure tombstones hold."""
    hasher = settings_hasher(settings)
    return lambda tenant, user: hasher.id(tenant, user, purpose="tombstone")


def settings_pseudonyms(settings: Settings) -> Pseudonyms:
    """How the deployment stores people's ids: as given, or as keyed hashes."""
    return Pseudonyms(settings_hasher(settings) if settings.privacy.pseudonymize else None)


def settings_store(settings: Settings) -> Store:
    """Open (and migrate) the store the settings name, with their durability options and
    the tombstones of erased people checked on every write.

    Raises:
        ConfigError: the store keeps people's ids the other way than
            `privacy.pseudonymize` says (or under another secret).
    """
    store = open_store(
        settings.store_url,
        synchronous=settings.store.synchronous,
        busy_timeout_ms=settings.store.busy_timeout_ms,
        tombstone_hash=tombstone_hash(settings),
    )
    try:
        check_store(settings_pseudonyms(settings), store.meta)
    except BaseException:
        store.close()
        raise
    return store


@contextmanager
def opened_store(settings: Settings) -> Iterator[Store]:
    """`settings_store`, closed when the block ends."""
    store = settings_store(settings)
    try:
        yield store
    finally:
        store.close()


def with_catalog(data: Dataset, store: Store, tenant: str) -> Dataset:
    """`data` with the texts and categories of the tenant's stored items.

    Data is returned unchanged when no stored item of it has a text (a model that needs
    texts then says so when it is fitted).
    """
    texts: dict[str, str] = {}
    categories: dict[str, list[str]] = {}
    for batch in store.catalog.scan_items(tenant):
        texts.update((item.id, item_text(item)) for item in batch)
        categories.update((item.id, list(item.categories)) for item in batch)
    try:
        return data.with_item_texts(texts, categories)
    except InvalidInput:
        return data


def with_impression_log(
    data: Dataset, store: Store, tenant: str, weighting: Weighting | None = None
) -> Dataset:
    """`data` with the log of the tenant's served lists and what people took from them.

    The impressions and the positive events are read a page at a time (see
    `penchant.data.impression_log`; people and items outside `data`, such as people without
    consent, are left out). Data is returned unchanged when no stored impression is of a
    person and item of it.
    """
    rules = weighting or Weighting()
    if store.events.count(tenant, EventFilter(types=("impression",))) == 0:
        return data
    where = EventFilter(types=("impression", *rules.positive_types))
    log = impression_log(store.events.scan_tables(tenant, where), data, rules)
    return data.with_impressions(log) if len(log) else data
