"""Above `ann_min_items` factor models retrieve through the approximate index: same answers."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.models import create_model
from penchant.ranking import Engine, RankingRequest
from penchant.schema import Item
from penchant.testing.synthetic import planted_blocks

pytest.importorskip("faiss", reason="approximate retrieval needs the penchant[ann] extra")


def test_approximate_retrieval_agrees_with_exact_scoring() -> None:
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
    approx = Engine("v", models, items, ann_min_items=1000)
    assert not exact.serving.indexes and approx.serving.indexes["ials"].kind != "exact"
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


def test_a_filter_that_removes_the_persons_taste_still_gets_the_exact_answer() -> None:
    data = planted_blocks(n_users=120, n_items=3000, blocks=6, density=0.05, rng=2)
    models = {"ials": create_model("ials", factors=32, epochs=8, rng=0).fit(data)}
    items = [Item(id=f"i{i}", categories=[f"c{i % 6}"]) for i in range(3000)]
    exact = Engine("v", models, items, ann_min_items=10**9)
    approx = Engine("v", models, items, ann_min_items=1000)
    for user in range(0, 120, 7):
        # every item of the person's own block is filtered out: the index's best are gone
        taste = f"c{user % 6}"
        request = RankingRequest.model_validate(
            {"user_id": f"u{user}", "k": 20, "filters": {"exclude_categories": [taste]}}
        )
        a, b = exact.recommend(request), approx.recommend(request)
        assert len(b.item_ids) == 20 and all(int(i[1:]) % 6 != user % 6 for i in b.item_ids)
        assert len(set(a.item_ids) & set(b.item_ids)) >= 19
