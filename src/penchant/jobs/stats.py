"""The stats job: how much data a tenant has, and whether it is fit for training."""

from __future__ import annotations

from typing import Any

from penchant.store import Store


def stats(store: Store, tenant: str) -> dict[str, Any]:
    """Counts and the data-quality report of a tenant, as JSON-able values.

    Args:
        store: the store to read.
        tenant: the tenant to report on.

    Returns:
        `events`; `users` (distinct users with events); `items` (distinct items known:
        the catalog plus items that only appear in events); `sessions`; the catalog
        counts; `events_unknown_item` and `unknown_items` (events whose item is not in the
        catalog, and how many such items); `events_without_item`; `by_type` (the event
        mix, most frequent first); `first_event` and `last_event` (ISO-8601, UTC).
    """
    quality = store.quality(tenant)
    return {
        "tenant": tenant,
        "events": quality.events,
        "users": quality.users,
        "items": quality.catalog_items + quality.unknown_items,
        "sessions": quality.sessions,
        "catalog_items": quality.catalog_items,
        "catalog_users": quality.catalog_users,
        "items_with_events": quality.items,
        "events_unknown_item": quality.events_unknown_item,
        "unknown_items": quality.unknown_items,
        "events_without_item": quality.events_without_item,
        "by_type": dict(quality.by_type),
        "first_event": quality.first_ts.isoformat() if quality.first_ts else None,
        "last_event": quality.last_ts.isoformat() if quality.last_ts else None,
    }
