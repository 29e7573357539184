"""EASE against its closed form computed here, and its memory guard."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models import EASE, CatalogTooLarge
from penchant.testing.synthetic import planted_blocks


def closed_form(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck (2019), eq. 8, written out with a linear solve rather than an explicit inverse."""
    n = x.shape[1]
    g = x.T @ x + lam * np.eye(n)
    p = np.linalg.solve(g, np.eye(n))
    b = np.eye(n) - p @ np.diag(1.0 / np.diag(p))
    return b


@pytest.mark.parametrize("lam", [1.0, 25.0, 400.0])
def test_weights_and_scores_match_the_closed_form(lam: float) -> None:
    data = planted_blocks(n_users=50, n_items=30, density=0.4, rng=3)
    x = data.matrix.toarray()
    x[x > 0] = 1.0
    model = EASE(regularization=lam).fit(data)
    expected = closed_form(x, lam)
    np.testing.assert_allclose(model.weights_, expected, atol=1e-5)
    assert np.allclose(np.diag(model.weights_), 0.0)
    scores = model.scores(np.arange(data.n_users), data.matrix)
    np.testing.assert_allclose(scores, x @ expected, atol=1e-4)


def test_weighted_variant_uses_the_weights() -> None:
    base = planted_blocks(n_users=40, n_items=20, rng=1)
    weights = np.random.default_rng(0).uniform(1, 5, len(base)).astype(np.float32)
    data = Dataset.from_arrays(
        base.user_ids, base.item_ids, base.users, base.items, weights, base.first_ts
    )
    model = EASE(regularization=5.0, weighted=True).fit(data)
    np.testing.assert_allclose(model.weights_, closed_form(data.matrix.toarray(), 5.0), atol=1e-5)
    # fitted on 0/1, but the history's weights still scale each item's contribution
    binary = EASE(regularization=5.0).fit(data)
    x = data.matrix.toarray()
    expected = x @ closed_form((x > 0).astype(float), 5.0)
    np.testing.assert_allclose(
        binary.scores(np.arange(5), data.matrix[:5]), expected[:5], atol=1e-4
    )


def test_a_catalog_too_large_is_refused_with_the_numbers() -> None:
    data = planted_blocks(n_users=10, n_items=200, rng=0)
    with pytest.raises(CatalogTooLarge, match=r"200 items needs about .* GiB.*itemknn"):
        EASE(memory_fraction=1e-9).fit(data)


def test_regularization_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="regularization"):
        EASE(regularization=0.0).fit(planted_blocks())
