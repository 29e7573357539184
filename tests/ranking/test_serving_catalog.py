"""Which model items the serving catalog serves: all of them without a catalog, only those
with a record once the tenant keeps one (a deleted item leaves serving)."""

from __future__ import annotations

from penchant.ranking.catalog import ServingCatalog
from penchant.schema import Item


def test_without_a_catalog_every_model_item_is_served() -> None:
    catalog = ServingCatalog.build(["a", "b"], [])
    assert catalog.available.tolist() == [True, True]
    assert catalog.listed.tolist() == [True, True]


def test_with_a_catalog_a_model_item_without_a_record_is_not_served() -> None:
    catalog = ServingCatalog.build(
        ["a", "b", "c"], [Item(id="a"), Item(id="c", available=False), Item(id="new")]
    )
    assert catalog.ids.tolist() == ["a", "b", "c", "new"]
    assert catalog.available.tolist() == [True, False, False, True]
    # "c" is out of stock but still listed (its page can show similar items); "b" is gone
    assert catalog.listed.tolist() == [True, False, True, True]
