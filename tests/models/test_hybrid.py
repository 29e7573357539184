"""The hybrid ranker: LightGBM LambdaMART over several models' candidates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models import Hybrid, Recommender
from penchant.models.features import (
    ItemStats,
    candidate_features,
    context_values,
    feature_names,
)
from penchant.testing import RecommenderContract
from penchant.testing.synthetic import planted_blocks

pytest.importorskip("lightgbm", reason="the hybrid ranker needs penchant[rank]")

SMALL = {"members": ("ials", "itemknn", "popular"), "candidates": 15, "trees": 30, "leaves": 7}


class TestHybrid(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [
        {"members": ("itemknn", "popular")},
        {"candidates": 4},
        {"trees": 2},
        {"rng": 7},
    ]

    @pytest.fixture
    def data(self) -> Dataset:
        return planted_blocks(n_users=120, n_items=40, rng=1)

    def make_model(self) -> Recommender:
        return Hybrid(**SMALL, threads=1)


def test_serving_and_offline_rank_the_same_candidates_the_same_way() -> None:
    """`rank_candidates` (the serving path) and `rank` (evaluation) share one feature code."""
    data = planted_blocks(n_users=120, n_items=40, rng=1)
    model = Hybrid(**SMALL, threads=1).fit(data)
    for user in (0, 7, 33):
        codes, _ = model.rank(np.array([user]), k=5)
        served, scores = model.rank_candidates(data.matrix[user], user=user)
        assert served[:5].tolist() == codes[0].tolist()
        assert (np.diff(scores) <= 0).all()


def test_features_have_their_documented_values() -> None:
    """Two sources, one category matrix, a person with three items (two in category 0)."""
    day = 86_400 * 1_000_000
    data = Dataset.from_arrays(
        ["u", "v"],
        ["a", "b", "c", "d"],
        users=np.array([0, 0, 0, 1]),
        items=np.array([0, 1, 2, 3]),
        first_ts=np.array([0, 10 * day, 20 * day, 30 * day]),
    ).with_item_texts({"a": "x"}, {"a": ["cat0"], "b": ["cat0"], "c": ["cat1"], "d": ["cat1"]})
    stats = ItemStats.of(data)
    history = data.matrix[0]
    feats = candidate_features(
        np.array([3, 1]),
        [np.array([0.2, 0.9], np.float32), np.array([np.nan, 0.5], np.float32)],
        stats,
        history,
        now_us=40 * day,
        context=context_values(int(datetime(2024, 1, 1, 13, tzinfo=UTC).timestamp() * 1e6), "tv"),
    )
    names = feature_names(["s1", "s2"], content=False)
    row = dict(zip(names, feats[0].tolist(), strict=True))
    assert feats.shape == (2, len(names))
    assert row["s1_score"] == pytest.approx(0.2) and row["s1_rank"] == 2
    assert np.isnan(row["s2_score"]) and row["s2_rank"] == 2  # no score ranks last
    assert row["log_popularity"] == pytest.approx(np.log(2))
    assert row["log_recent"] == pytest.approx(np.log(2))  # within 30 days of the end
    assert row["age_days"] == pytest.approx(10.0)
    assert row["category_affinity"] == pytest.approx(1 / 3)  # d is cat1: 1 of u's 3 items
    assert feats[1][names.index("category_affinity")] == pytest.approx(2 / 3)
    assert row["log_history"] == pytest.approx(np.log(4))
    assert (row["hour"], row["weekday"], row["device"]) == (13.0, 0.0, 3.0)  # a Monday


def test_many_categories_give_the_same_affinity_as_few(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dense copy (few categories) and the sparse rows (many) agree."""
    from penchant.models import features

    data = planted_blocks(n_users=60, n_items=40, rng=2)
    gen = np.random.default_rng(0)
    labels = {str(i): [f"c{c}" for c in gen.choice(12, size=2)] for i in data.item_ids}
    data = data.with_item_texts({str(i): "x" for i in data.item_ids}, labels)
    candidates = np.arange(40)
    dense = ItemStats.of(data)
    assert dense.dense_categories is not None
    monkeypatch.setattr(features, "DENSE_CATEGORIES", 0)
    sparse = ItemStats.of(data)
    assert sparse.dense_categories is None
    for user in (0, 5, 17):
        history = data.matrix[user]
        a = candidate_features(candidates, [np.zeros(40, np.float32)], dense, history, now_us=0)
        b = candidate_features(candidates, [np.zeros(40, np.float32)], sparse, history, now_us=0)
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_the_content_member_joins_only_when_items_have_texts() -> None:
    pytest.importorskip("sentence_transformers", reason="needs penchant[text]")
    from penchant.testing.synthetic import topical

    data = planted_blocks(n_users=120, n_items=40, rng=1)
    params = {**SMALL, "members": ("itemknn", "content")}
    assert list(Hybrid(**params).fit(data).members_) == ["itemknn"]
    with_text = Hybrid(**params).fit(topical(data))
    assert list(with_text.members_) == ["itemknn", "content"]
    assert "content_recent" in with_text.feature_importance()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"members": ()}, "members"),
        ({"members": ("hybrid",)}, "members"),
        ({"members": ("ials", "ials")}, "members"),
        ({"candidates": 0}, "candidates"),
        ({"label_fraction": 1.0}, "label_fraction"),
        ({"trees": 0}, "trees"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_bad_parameters_name_themselves(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Hybrid(**{**SMALL, **change}).fit(planted_blocks())
    assert caught.value.field == field


def test_people_with_one_item_give_nothing_to_learn_from() -> None:
    data = Dataset.from_arrays(
        ["u", "v"], ["a", "b"], users=np.array([0, 1]), items=np.array([0, 1])
    )
    with pytest.raises(InvalidInput, match="too few interactions"):
        Hybrid(**SMALL).fit(data)


def test_an_erased_person_leaves_no_recent_items() -> None:
    data = planted_blocks(n_users=120, n_items=40, rng=1)
    model = Hybrid(**SMALL, threads=1).fit(data)
    assert model.recent_[3].nnz > 0
    model.forget_user("u3")
    assert model.recent_[3].nnz == 0
    assert all(m.history_[3].nnz == 0 for m in model.members_.values())
    assert isinstance(model.recent_, sp.csr_matrix)
