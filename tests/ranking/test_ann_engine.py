"""Above `ann_min_items` factor models retrieve through an item index: the same answers as
exact scoring, whichever index (`bounded` is exact, `hnsw` approximate)."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.models import create_model
from penchant.models.ann import ItemIndex
from penchant.ranking import Engine, RankingRequest
from penchant.schema import Item
from penchant.testing.synthetic import planted_blocks

pytest.importorskip("faiss", reason="approximate retrieval needs the penchant[ann] extra")


@pytest.mark.parametrize("retrieval", ["auto", "bounded", "hnsw"])
def test_indexed_retrieval_agrees_with_exact_scoring(retrieval: str) -> None:
    data = planted_blocks(n_users=300, n_items=3000, blocks=6, density=0.05, rng=1)
    models = {
        "popular": create_model("popular").fit(data),
        "ials": create_model("ials", factors=32, epochs=8, rng=0).fit(data),
    }
    items = [
        Item(id=f"i{i}", categories=[f"c{i % 6}"], attributes={"price": float(i % 100)})
        for i in range(3000)
    ]
    exact = Engine("v", models, items, ann_min_items=10**9)
    approx = Engine("v", models, items, ann_min_items=1000, retrieval=retrieval)
    kind = approx.serving.indexes["ials"].kind
    assert not exact.serving.indexes and kind in {retrieval, "bounded", "hnsw"} - {"auto"}
    if retrieval != "auto":
        assert kind == retrieval
    overlap = []
    for user in range(0, 300, 5):
        request = RankingRequest.model_validate(
            {"user_id": f"u{user}", "k": 20, "filters": {"attributes": {"price": {"max": 60}}}}
        )
        a, b = exact.recommend(request), approx.recommend(request)
        assert all(float(i[1:]) % 100 <= 60 for i in b.item_ids)
        assert len(b.item_ids) == 20
        overlap.append(len(set(a.item_ids) & set(b.item_ids)) / 20)
    assert np.mean(overlap) >= 0.95


@pytest.mark.parametrize("retrieval", ["bounded", "hnsw"])
def test_a_filter_that_removes_the_persons_taste_still_gets_the_exact_answer(
    retrieval: str,
) -> None:
    data = planted_blocks(n_users=120, n_items=3000, blocks=6, density=0.05, rng=2)
    models = {"ials": create_model("ials", factors=32, epochs=8, rng=0).fit(data)}
    items = [Item(id=f"i{i}", categories=[f"c{i % 6}"]) for i in range(3000)]
    exact = Engine("v", models, items, ann_min_items=10**9)
    approx = Engine("v", models, items, ann_min_items=1000, retrieval=retrieval)
    for user in range(0, 120, 7):
        # every item of the person's own block is filtered out: the index's best are gone
        taste = f"c{user % 6}"
        request = RankingRequest.model_validate(
            {"user_id": f"u{user}", "k": 20, "filters": {"exclude_categories": [taste]}}
        )
        a, b = exact.recommend(request), approx.recommend(request)
        assert len(b.item_ids) == 20 and all(int(i[1:]) % 6 != user % 6 for i in b.item_ids)
        assert len(set(a.item_ids) & set(b.item_ids)) >= 19


def test_the_retrieval_setting_replaces_a_prebuilt_index_of_another_kind() -> None:
    data = planted_blocks(n_users=100, n_items=2000, blocks=4, density=0.05, rng=3)
    models = {"ials": create_model("ials", factors=16, epochs=4, rng=0).fit(data)}
    items = [Item(id=f"i{i}") for i in range(2000)]
    saved = {"ials": ItemIndex.build(models["ials"].item_factors_, method="bounded")}
    kept = Engine("v", models, items, ann_min_items=1000, prebuilt=saved)
    assert kept.serving.indexes["ials"] is saved["ials"]  # auto takes what training chose
    other = Engine("v", models, items, ann_min_items=1000, prebuilt=saved, retrieval="hnsw")
    assert other.serving.indexes["ials"].kind == "hnsw"
