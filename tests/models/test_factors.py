"""iALS and BPR: the same factors as `implicit` used directly, and a fold-in that matches it."""

from __future__ import annotations

import numpy as np
import pytest
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from penchant.models import BPR, ImplicitALS
from penchant.testing.synthetic import planted_blocks


def test_ials_learns_what_implicit_learns() -> None:
    data = planted_blocks(n_users=80, n_items=50, rng=2)
    ours = ImplicitALS(factors=6, regularization=0.1, alpha=2.0, epochs=5, rng=3, threads=1)
    ours.fit(data)
    with threadpool_limits(1, "blas"):
        theirs = AlternatingLeastSquares(
            factors=6, regularization=0.1, alpha=2.0, iterations=5, random_state=3, num_threads=1
        )
        theirs.fit(data.matrix, show_progress=False)
    np.testing.assert_allclose(ours.item_factors_, theirs.item_factors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.user_factors_, theirs.user_factors, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_fold_in_equals_implicits_exact_user_solve(alpha: float) -> None:
    data = planted_blocks(n_users=60, n_items=40, rng=4)
    model = ImplicitALS(factors=5, regularization=0.5, alpha=alpha, epochs=8, threads=1).fit(data)
    with threadpool_limits(1, "blas"):
        theirs = AlternatingLeastSquares(factors=5, regularization=0.5, alpha=alpha)
        theirs.item_factors = model.item_factors_.copy()
        theirs.user_factors = model.user_factors_.copy()
        users = np.arange(10)
        expected = theirs.recalculate_user(users, data.matrix[users])
    folded = model._fold_in(data.matrix[users])
    np.testing.assert_allclose(folded, expected, rtol=1e-3, atol=1e-4)


def test_a_folded_in_user_is_ranked_like_the_trained_one() -> None:
    data = planted_blocks(n_users=60, n_items=40, rng=5)
    model = ImplicitALS(factors=8, regularization=0.1, epochs=30, threads=1).fit(data)
    users = np.arange(data.n_users)
    trained, _ = model.rank(users, k=3)
    anonymous, _ = model.rank(np.full(len(users), -1), data.matrix, k=3)
    assert (trained[:, 0] == anonymous[:, 0]).mean() > 0.8


def test_bpr_learns_what_implicit_learns() -> None:
    data = planted_blocks(n_users=80, n_items=50, rng=2)
    ours = BPR(factors=6, learning_rate=0.05, regularization=0.01, epochs=20, rng=3, threads=1)
    ours.fit(data)
    binary = data.matrix.copy()
    binary.data[:] = 1.0
    with threadpool_limits(1, "blas"):
        theirs = BayesianPersonalizedRanking(
            factors=6,
            learning_rate=0.05,
            regularization=0.01,
            iterations=20,
            random_state=3,
            num_threads=1,
        )
        theirs.fit(binary, show_progress=False)
    np.testing.assert_allclose(ours.item_factors_, theirs.item_factors, rtol=1e-5, atol=1e-6)
    assert ours.item_factors_.shape[1] == 7  # implicit's item bias factor is kept
