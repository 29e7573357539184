"""Which model items the serving catalog serves: all of them without a catalog, only those
with a record once the tenant keeps one (a deleted item leaves serving)."""

from __future__ import annotations

import pytest
from ranking_world import NOW, catalog_items

from penchant.ranking.catalog import ServingCatalog
from penchant.ranking.request import FilterSpec, Range
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


def test_appending_new_items_serves_them_as_a_full_build_would() -> None:
    """`extended` (a write of new items) and `build` (a rebuild) agree item by item: ids,
    titles, availability, dates, every label, the provider and the attributes; filters,
    which read all of these, then allow the same items."""
    items = catalog_items()
    extra = [
        Item(id="fresh", title="Fresh", categories=["odd", "brand-new"], provider="p9",
             attributes={"price": 3.0, "colour": "red"}, tags=["x"]),
        Item(id="gone", available=False, tags=["y"]),
    ]  # fmt: skip
    model_items = [f"i{i}" for i in range(40)]
    full = ServingCatalog.build(model_items, items + extra)
    grown = ServingCatalog.build(model_items, items).extended(extra)
    assert sorted(grown.ids.tolist()) == sorted(full.ids.tolist())
    assert grown.n_model == full.n_model == 40
    for item_id in [*model_items, "new1", *(e.id for e in extra)]:
        a, b = int(full.codes([item_id])[0]), int(grown.codes([item_id])[0])
        assert full.titles[a] == grown.titles[b]
        for name in ("available", "listed", "published", "expires"):
            assert getattr(full, name)[a] == getattr(grown, name)[b], (item_id, name)
        for kind in ("category", "provider", "tag"):
            assert sorted(full.label_names(a, kind)) == sorted(grown.label_names(b, kind))
        prov_a, prov_b = full.provider[a], grown.provider[b]
        assert (prov_a < 0) == (prov_b < 0)
        if prov_a >= 0:
            assert full.label_names_[prov_a] == grown.label_names_[prov_b]
        for name in ("price", "colour", "language"):
            assert (
                full.attributes.get(name, [None] * len(full))[a]
                == grown.attributes.get(name, [None] * len(grown))[b]
            )
    spec = FilterSpec(categories=["odd"], attributes={"price": Range(max=10)})
    allowed_full = set(full.ids[full.allowed(spec, NOW)].tolist())
    assert allowed_full == set(grown.ids[grown.allowed(spec, NOW)].tolist())
    assert "fresh" in allowed_full
    with pytest.raises(ValueError):
        grown.extended([Item(id="fresh")])  # not new
    with pytest.raises(ValueError):
        ServingCatalog.build(model_items, []).extended(extra)  # no records: a rebuild decides
