"""Popularity, trending and blending against hand computations."""

from __future__ import annotations

import numpy as np

from penchant.data import Dataset
from penchant.models import EASE, Blend, ItemKNN, Popular

DAY = 86_400 * 1_000_000


def test_trending_halves_a_pair_per_half_life() -> None:
    # item a: 3 users long ago; item b: 2 users today
    data = Dataset.from_arrays(
        ["u1", "u2", "u3", "u4", "u5"],
        ["a", "b"],
        users=np.array([0, 1, 2, 3, 4]),
        items=np.array([0, 0, 0, 1, 1]),
        first_ts=np.array([0, 0, 0, 10 * DAY, 10 * DAY]),
    )
    assert Popular().fit(data).recommend(["x"], k=2)[0][0].tolist() == ["a", "b"]
    trending = Popular(half_life_days=5.0).fit(data)
    np.testing.assert_allclose(trending.item_scores_, [3 * 0.25, 2.0])
    assert trending.recommend(["x"], k=2)[0][0].tolist() == ["b", "a"]


def test_blend_is_the_weighted_sum_of_standardized_scores() -> None:
    from penchant.testing.synthetic import planted_blocks

    data = planted_blocks(n_users=30, n_items=20, rng=1)
    knn, ease = ItemKNN(k=5).fit(data), EASE(regularization=20.0).fit(data)
    blend = Blend([ItemKNN(k=5), EASE(regularization=20.0)], weights=[2.0, 1.0]).fit(data)
    users = np.arange(data.n_users)

    def z(s: np.ndarray) -> np.ndarray:
        return (s - s.mean(axis=1, keepdims=True)) / s.std(axis=1, keepdims=True)

    expected = 2.0 * z(knn.scores(users, data.matrix)) + z(ease.scores(users, data.matrix))
    np.testing.assert_allclose(blend.scores(users, data.matrix), expected, atol=1e-4)
    adopted = Blend([knn, ease], weights=[2.0, 1.0]).with_fitted(data)
    np.testing.assert_allclose(adopted.scores(users, data.matrix), expected, atol=1e-4)
