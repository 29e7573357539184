"""The catalog of the small served world the ranking tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from penchant.schema import Item

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def catalog_items() -> list[Item]:
    """Items i0..i39: category `even`/`odd` by taste group, provider p0..p3, a price, a
    language; i2 is out of stock, i4 expired, i6 not yet published; `new1` is an item the
    models have never seen, just published by p1."""
    items = []
    for i in range(40):
        items.append(
            Item(
                id=f"i{i}",
                title=f"Item {i}",
                categories=["even" if i % 2 == 0 else "odd"],
                provider=f"p{i % 4}",
                attributes={"price": float(i), "language": "en" if i < 20 else "fr"},
                available=i != 2,
                expires_at=NOW - timedelta(days=1) if i == 4 else None,
                published_at=NOW + timedelta(days=1) if i == 6 else NOW - timedelta(days=30),
            )
        )
    items.append(
        Item(
            id="new1",
            title="Brand new",
            categories=["odd"],
            provider="p1",
            published_at=NOW - timedelta(hours=2),
        )
    )
    return items
