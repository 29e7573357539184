"""ItemKNN against a brute-force computation on a small matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models import ItemKNN
from penchant.models import itemknn as itemknn_module


def random_data(seed: int, n_users: int = 40, n_items: int = 25, density: float = 0.2) -> Dataset:
    gen = np.random.default_rng(seed)
    dense = gen.random((n_users, n_items)) < density
    users, items = np.nonzero(dense)
    weights = gen.integers(1, 6, len(users)).astype(np.float32)
    return Dataset.from_arrays(
        [f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)], users, items, weights
    )


def brute_force(x: np.ndarray, k: int, shrink: float, min_sim: float) -> np.ndarray:
    """S[j, i] = similarity of neighbour j to target i, top k per target, by plain loops."""
    n = x.shape[1]
    s = np.zeros((n, n))
    for i in range(n):
        sims = []
        for j in range(n):
            if i == j:
                continue
            dot = float(x[:, i] @ x[:, j])
            denominator = np.linalg.norm(x[:, i]) * np.linalg.norm(x[:, j]) + shrink
            sim = dot / denominator if denominator > 0 else 0.0
            if sim >= min_sim:
                sims.append((sim, j))
        sims.sort(key=lambda t: (-t[0], t[1]))
        for sim, j in sims[:k]:
            s[j, i] = sim
    return s


@pytest.mark.parametrize(
    ("seed", "k", "shrink", "weighted"),
    [(0, 5, 0.0, False), (1, 3, 10.0, False), (2, 100, 0.0, True), (3, 1, 2.0, True)],
)
def test_similarities_and_scores_match_brute_force(
    seed: int, k: int, shrink: float, weighted: bool
) -> None:
    data = random_data(seed)
    history = data.matrix.toarray()  # scores always weight the history
    x = history if weighted else (history > 0).astype(float)
    model = ItemKNN(k=k, shrinkage=shrink, weighted=weighted).fit(data)
    expected = brute_force(x, k, shrink, 1e-6)
    np.testing.assert_allclose(model.similarity_.toarray(), expected, atol=1e-6)
    active = np.flatnonzero(data.user_counts > 0)  # users with no items get popularity
    scores = model.scores(active, data.matrix[active])
    np.testing.assert_allclose(scores, history[active] @ expected, atol=1e-4)


def test_history_neighbourhood_is_the_transposed_scoring() -> None:
    data = random_data(7)
    x = data.matrix.toarray()
    target = ItemKNN(k=3).fit(data)
    history = ItemKNN(k=3, neighbourhood="history").fit(data)
    expected = brute_force((x > 0).astype(float), 3, 0.0, 1e-6)
    active = np.flatnonzero(data.user_counts > 0)
    np.testing.assert_allclose(
        history.scores(active, data.matrix[active]), x[active] @ expected.T, atol=1e-5
    )
    assert not np.allclose(
        history.scores(active, data.matrix[active]), target.scores(active, data.matrix[active])
    )


def test_blocks_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    data = random_data(5, n_items=60)
    whole = ItemKNN(k=7, shrinkage=1.0).fit(data).similarity_.toarray()
    monkeypatch.setattr(itemknn_module, "_BLOCK_ENTRIES", 50)  # forces many small blocks
    blocked = ItemKNN(k=7, shrinkage=1.0).fit(data).similarity_.toarray()
    np.testing.assert_array_equal(whole, blocked)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_and_sparse_pruning_agree_with_ties(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random_data(seed, n_users=60, n_items=50, density=0.15)  # 0/1 data: many ties
    monkeypatch.setattr(itemknn_module, "_DENSE_SHARE", 0.0)
    dense = ItemKNN(k=4).fit(data).similarity_.toarray()
    monkeypatch.setattr(itemknn_module, "_DENSE_SHARE", 2.0)
    sparse = ItemKNN(k=4).fit(data).similarity_.toarray()
    np.testing.assert_array_equal(dense, sparse)
    x = (data.matrix.toarray() > 0).astype(float)
    np.testing.assert_allclose(dense, brute_force(x, 4, 0.0, 1e-6), atol=1e-6)


def test_similar_items_are_the_neighbourhood() -> None:
    data = random_data(4)
    model = ItemKNN(k=4).fit(data)
    ids, _ = model.similar_items(["i0"], k=4)
    column = model.similarity_[:, 0].toarray().ravel()
    best = np.argsort(-column, kind="stable")[:4]
    assert sorted(ids[0].tolist()) == sorted(data.item_ids[best[column[best] > 0]].tolist())
    assert isinstance(model.similarity_, sp.csr_matrix)


def test_bad_hyperparameters_are_refused() -> None:
    with pytest.raises(InvalidInput, match="k"):
        ItemKNN(k=0).fit(random_data(0))
    with pytest.raises(InvalidInput, match="shrinkage"):
        ItemKNN(shrinkage=-1).fit(random_data(0))
    with pytest.raises(InvalidInput, match="neighbourhood"):
        ItemKNN(neighbourhood="user").fit(random_data(0))  # type: ignore[arg-type]
