"""Running a model over a split: full ranking, history removed, strong fold-in."""

from __future__ import annotations

import numpy as np

from penchant.data import Dataset, Split, split
from penchant.evaluation.run import evaluate_model
from penchant.models import EASE, ItemKNN, Popular
from penchant.testing.synthetic import planted_blocks


def test_lists_skip_history_and_metrics_come_per_test_user() -> None:
    data = planted_blocks(n_users=80, n_items=40, rng=1)
    s = split(data, "holdout", rng=0)
    result = evaluate_model(ItemKNN(k=10), s, [5, 10])
    test_users = np.unique(s.test.users)
    assert result.users.tolist() == test_users.tolist()
    assert result.recommended.shape == (len(test_users), 10)
    train = s.train.matrix
    for user, row in zip(result.users, result.recommended, strict=True):
        assert not set(row[row >= 0]) & set(train[user].indices)
    assert set(result.per_user) >= {"ndcg@5", "ndcg@10", "recall@10", "map@5", "hit_rate@10"}
    assert all(len(v) == len(test_users) for v in result.per_user.values())
    assert {"coverage@10", "gini@10", "novelty@10", "arp@10"} <= set(result.catalog)
    # planted groups: a co-consumption model beats popularity by far
    popular = evaluate_model(Popular(), s, [10])
    assert result.mean("ndcg@10") > popular.mean("ndcg@10") + 0.2


def test_strong_protocol_folds_in_users_the_model_never_saw() -> None:
    data = planted_blocks(n_users=100, n_items=40, rng=2)
    s = split(data, "strong", test_users=0.2, rng=0)
    result = evaluate_model(EASE(regularization=10.0), s, [5])
    assert s.fold_in is not None
    assert not set(np.unique(s.train.users)) & set(result.users)
    fold_in = s.fold_in.matrix
    for user, row in zip(result.users, result.recommended, strict=True):
        assert not set(row) & set(fold_in[user].indices)
    # fold-in history alone finds the user's group (item i and user u are in group x % 2)
    top = result.recommended[:, :5]
    assert ((top % 2) == (result.users % 2)[:, None]).mean() > 0.95


def test_summary_intervals_hold_the_mean() -> None:
    data = planted_blocks(n_users=80, n_items=40, rng=3)
    result = evaluate_model(Popular(), split(data, "leave-last-out"), [10])
    for stats in result.summary(n_resamples=200).values():
        assert stats["ci_low"] <= stats["mean"] <= stats["ci_high"]


def test_cold_start_ranks_the_cold_items_only() -> None:
    """Held-out items have no training pair, and the lists hold nothing else."""
    data = planted_blocks(n_users=80, n_items=40, rng=4)
    s = split(data, "cold-start", test_fraction=0.25, rng=0)
    assert s.candidates is not None and len(s.candidates) == 10
    result = evaluate_model(ItemKNN(k=10), s, [5, 20])
    cold = set(s.candidates.tolist())
    listed = result.recommended[result.recommended >= 0]
    assert set(listed.tolist()) <= cold
    assert (result.recommended[:, :10] >= 0).all()  # ten cold items fill the first ten places
    assert result.mean("recall@20") == 1.0  # every cold item is in a list of 20 (only 10 exist)


def test_equal_scores_among_candidates_do_not_follow_the_catalog_order() -> None:
    """Popularity knows nothing of cold items; if ties went by item code, the cold item
    with the lowest code, which every user took, would top every list."""
    n_users = 200
    users = np.repeat(np.arange(n_users), 3)
    warm = 10 + np.random.default_rng(0).integers(0, 10, size=(n_users, 2))
    items = np.column_stack([warm, np.zeros(n_users, dtype=np.int64)]).ravel()
    keep = np.r_[True, (users[1:] != users[:-1]) | (items[1:] != items[:-1])]
    data = Dataset.from_arrays(
        [f"u{u}" for u in range(n_users)],
        [f"i{i}" for i in range(20)],
        users=users[keep],
        items=items[keep],
    )
    is_cold = data.items < 10
    cold_split = Split(
        "cold-start",
        data.subset(~is_cold),
        data.subset(is_cold),
        candidates=np.arange(10, dtype=np.int64),
    )
    first = evaluate_model(Popular(), cold_split, [1], seed=0)
    assert first.mean("hit_rate@1") < 0.25  # chance is 0.1
    again = evaluate_model(Popular(), cold_split, [1], seed=0)
    assert (again.recommended == first.recommended).all()
    other = evaluate_model(Popular(), cold_split, [1], seed=1)
    assert (other.recommended != first.recommended).any()
