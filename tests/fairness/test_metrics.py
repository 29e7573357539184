"""Fairness and diversity metrics: hand-computed answers, scipy cross-checks, properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import distance
from scipy.stats import entropy

from penchant.errors import InvalidInput
from penchant.fairness import diversity as diversity_module
from penchant.fairness import (
    exposure_disparity,
    intra_list_diversity,
    long_tail_share,
    miscalibration,
    miscalibration_per_user,
    popularity_lift,
    serendipity,
    utility_gap,
)

IntArray = npt.NDArray[np.int64]

# Items 0..3 with labels a=0, b=1, c=2: 0 {a}, 1 {a, b}, 2 {b}, 3 {c}.
LABELS = sp.csr_matrix(
    ([1.0, 1.0, 1.0, 1.0, 1.0], ([0, 1, 1, 2, 3], [0, 0, 1, 1, 2])), shape=(4, 3)
)
C = 1.0 / math.log2(3.0)  # exposure of rank 2


def random_lists(rng: np.random.Generator, n_users: int, n_items: int, depth: int) -> IntArray:
    """Distinct items per row, some rows padded short (one empty, one of a single item)."""
    out = np.full((n_users, depth), -1, dtype=np.int64)
    for user in range(n_users):
        length = min(depth, n_items) if rng.random() < 0.7 else int(rng.integers(0, depth + 1))
        length = {0: 0, 1: 1}.get(user, min(length, n_items))
        out[user, :length] = rng.choice(n_items, size=length, replace=False)
    return out


def random_binary(rng: np.random.Generator, shape: tuple[int, int], p: float) -> sp.csr_matrix:
    """A 0/1 matrix stored with values other than 1, which the metrics must treat as 1."""
    dense = (rng.random(shape) < p) * rng.integers(1, 4, shape)
    return sp.csr_matrix(dense.astype(np.float64))


# intra_list_diversity


def test_ild_with_labels_by_hand() -> None:
    # [0, 1, 2]: d(0,1) = 1 - 1/2, d(0,2) = 1 - 0/2, d(1,2) = 1 - 1/2 -> (1/2 + 1 + 1/2) / 3 = 2/3.
    # [3, 0, pad]: one pair, d(3,0) = 1 -> 1. [2, pad, pad]: one item, skipped.
    # ILD = (2/3 + 1) / 2 = 5/6.
    recommended = np.array([[0, 1, 2], [3, 0, -1], [2, -1, -1]])
    assert intra_list_diversity(recommended, 3, item_labels=LABELS) == pytest.approx(5 / 6)
    # At k = 2: [0, 1] -> 1/2, [3, 0] -> 1, [2] skipped: (1/2 + 1) / 2 = 3/4.
    assert intra_list_diversity(recommended, 2, item_labels=LABELS) == pytest.approx(3 / 4)


def test_ild_with_vectors_by_hand() -> None:
    # v0 = (1, 0), v1 = (0, 1), v2 = (1, 1): 1 - cos is 1, 1 - 1/sqrt2, 1 - 1/sqrt2.
    # ILD = (3 - sqrt2) / 3.
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    value = intra_list_diversity(np.array([[0, 1, 2]]), 3, item_vectors=vectors)
    assert value == pytest.approx((3.0 - math.sqrt(2.0)) / 3.0)


def test_ild_of_items_without_labels_is_zero_and_short_lists_give_nan() -> None:
    bare = sp.csr_matrix((3, 2))
    assert intra_list_diversity(np.array([[0, 1, 2]]), 3, item_labels=bare) == 0.0
    assert math.isnan(intra_list_diversity(np.array([[1, -1], [-1, -1]]), 2, item_labels=bare))


def plain_ild(recommended: IntArray, k: int, d: Callable[[int, int], float]) -> float:
    scores = []
    for row in recommended[:, :k]:
        items = [int(i) for i in row if i >= 0]
        pairs = [d(a, b) for n, a in enumerate(items) for b in items[n + 1 :]]
        if pairs:
            scores.append(sum(pairs) / len(pairs))
    return float(np.mean(scores))


def test_ild_with_labels_matches_scipy_jaccard() -> None:
    rng = np.random.default_rng(1)
    dense = random_binary(rng, (40, 6), 0.3).toarray()
    dense[5:7] = 0  # two items without labels: distance 0 between them, as in scipy
    labels = sp.csr_matrix(dense)
    recommended = random_lists(rng, 60, 40, 8)
    recommended[2] = [5, 6, 7] + [-1] * 5
    boolean = labels.toarray() != 0
    expected = plain_ild(recommended, 6, lambda a, b: distance.jaccard(boolean[a], boolean[b]))
    assert intra_list_diversity(recommended, 6, item_labels=labels) == pytest.approx(expected)


def test_ild_with_vectors_matches_scipy_cosine() -> None:
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(40, 5))
    recommended = random_lists(rng, 60, 40, 8)
    expected = plain_ild(recommended, 8, lambda a, b: distance.cosine(vectors[a], vectors[b]))
    assert intra_list_diversity(recommended, 8, item_vectors=vectors) == pytest.approx(expected)


def test_ild_in_blocks_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    labels = random_binary(rng, (30, 5), 0.4)
    vectors = rng.random((30, 4))
    recommended = random_lists(rng, 50, 30, 6)
    whole = [
        intra_list_diversity(recommended, 6, item_labels=labels),
        intra_list_diversity(recommended, 6, item_vectors=vectors),
    ]
    monkeypatch.setattr(diversity_module, "_BLOCK_CELLS", 3 * 36)  # blocks of 3 users
    blocks = [
        intra_list_diversity(recommended, 6, item_labels=labels),
        intra_list_diversity(recommended, 6, item_vectors=vectors),
    ]
    assert blocks == pytest.approx(whole, rel=1e-12)


@st.composite
def lists_and_labels(draw: st.DrawFn) -> tuple[IntArray, sp.csr_matrix, int]:
    n_items = draw(st.integers(1, 10))
    n_labels = draw(st.integers(1, 5))
    cells = draw(st.lists(st.booleans(), min_size=n_items * n_labels, max_size=n_items * n_labels))
    labels = sp.csr_matrix(np.array(cells, dtype=np.float64).reshape(n_items, n_labels))
    depth = draw(st.integers(1, 6))
    rows = []
    for _ in range(draw(st.integers(1, 5))):
        order = draw(st.permutations(range(n_items)))
        length = draw(st.integers(0, min(depth, n_items)))
        rows.append(list(order[:length]) + [-1] * (depth - length))
    return np.array(rows, dtype=np.int64), labels, draw(st.integers(1, depth))


@settings(max_examples=150, deadline=None)
@given(lists_and_labels())
def test_ild_lies_in_zero_one(case: tuple[IntArray, sp.csr_matrix, int]) -> None:
    recommended, labels, k = case
    value = intra_list_diversity(recommended, k, item_labels=labels)
    assert math.isnan(value) or 0.0 <= value <= 1.0
    vectors = labels.toarray() + 0.5  # non-negative, never zero
    value = intra_list_diversity(recommended, k, item_vectors=vectors)
    assert math.isnan(value) or -1e-12 <= value <= 1.0 + 1e-12


# serendipity


def test_serendipity_by_hand() -> None:
    # Relevant: user 0 {0, 2, 3}, user 1 {1}. Lists [0, 1, 2] and [1, 2, pad].
    relevant = sp.csr_matrix(([1.0, 1.0, 1.0, 1.0], ([0, 0, 0, 1], [0, 2, 3, 1])), shape=(2, 5))
    recommended = np.array([[0, 1, 2], [1, 2, -1]])
    # Global expected list [0, 1]: user 0 keeps item 2 (relevant, unexpected) -> 1/3; user 1's
    # relevant item 1 is expected -> 0/2. Mean 1/6.
    assert serendipity(recommended, relevant, 3, expected=np.array([0, 1])) == pytest.approx(1 / 6)
    # Per-user expected [2, pad] and [4, pad]: user 0 keeps item 0 -> 1/3, user 1 keeps item 1
    # -> 1/2. Mean 5/12.
    per_user = np.array([[2, -1], [4, -1]])
    assert serendipity(recommended, relevant, 3, expected=per_user) == pytest.approx(5 / 12)
    # At k = 1: user 0 [0] is expected -> 0, user 1 [1] expected -> 0.
    assert serendipity(recommended, relevant, 1, expected=np.array([0, 1])) == 0.0


def test_serendipity_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(4)
    relevant = random_binary(rng, (80, 30), 0.2)
    recommended = random_lists(rng, 80, 30, 10)
    expected = random_lists(rng, 80, 30, 5)
    truth = relevant.toarray() != 0
    scores = []
    for user, row in enumerate(recommended[:, :7]):
        items = [int(i) for i in row if i >= 0]
        if items:
            unexpected = [i for i in items if i not in set(expected[user])]
            scores.append(sum(truth[user, i] for i in unexpected) / len(items))
    value = serendipity(recommended, relevant, 7, expected=expected)
    assert value == pytest.approx(float(np.mean(scores)))


# long_tail_share


def test_long_tail_share_by_hand() -> None:
    counts = np.array([10, 6, 3, 1, 0])  # 20 interactions
    recommended = np.array([[0, 1, 2], [3, 4, -1]])
    # head_share 0.6: threshold 12; item 0 (0 before it) and item 1 (10 before) are the head,
    # item 2 (16 before) is not. User 0: 1 tail of 3; user 1: 2 of 2. (1/3 + 1) / 2 = 2/3.
    value = long_tail_share(recommended, 3, item_counts=counts, head_share=0.6)
    assert value == pytest.approx(2 / 3)
    # head_share 0.5: threshold 10; item 1 has 10 before it, so the head is {0} alone:
    # (2/3 + 1) / 2 = 5/6.
    assert long_tail_share(recommended, 3, item_counts=counts, head_share=0.5) == pytest.approx(
        5 / 6
    )
    # the default 0.8 (threshold 16): items 0 and 1 (10 before) are the head, item 2 (16
    # before) is not; the same head as 0.6.
    assert long_tail_share(recommended, 3, item_counts=counts) == pytest.approx(2 / 3)
    # head_share 0: no head, everything is tail.
    assert long_tail_share(recommended, 3, item_counts=counts, head_share=0.0) == 1.0


def test_long_tail_ties_go_to_the_lower_item_code() -> None:
    # Two items of 5: threshold 5 lets item 0 in (0 before it) and keeps item 1 out.
    assert long_tail_share(np.array([[0], [1]]), 1, item_counts=[5, 5], head_share=0.5) == 0.5
    assert long_tail_share(np.array([[1]]), 1, item_counts=[5, 5], head_share=0.5) == 1.0


@settings(max_examples=150, deadline=None)
@given(
    lists_and_labels(),
    st.lists(st.integers(0, 50), min_size=10, max_size=10),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_long_tail_share_is_a_share_falling_with_the_head(
    case: tuple[IntArray, sp.csr_matrix, int], counts: list[int], low: float, high: float
) -> None:
    recommended, _, k = case
    counts[0] += 1  # at least one interaction
    low, high = sorted((low, high))
    small_head = long_tail_share(recommended, k, item_counts=counts, head_share=low)
    large_head = long_tail_share(recommended, k, item_counts=counts, head_share=high)
    if not math.isnan(small_head):
        assert 0.0 <= large_head <= small_head <= 1.0


# popularity_lift


def test_popularity_lift_by_hand() -> None:
    # Two users, phi = counts / 2 = [1, 1/2, 1/2, 0]. Profiles: user 0 {0, 1} -> 3/4, user 1
    # {0} -> 1; GAP_p = 7/8. Lists: [2, 3] -> 1/4, [1, pad] -> 1/2; GAP_r = 3/8.
    # Lift = (3/8 - 7/8) / (7/8) = -4/7.
    history = sp.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 1], [0, 1, 0])), shape=(2, 4))
    recommended = np.array([[2, 3], [1, -1]])
    counts = np.array([2, 1, 1, 0])
    value = popularity_lift(recommended, 2, item_counts=counts, history=history)
    assert value == pytest.approx(-4 / 7)
    # Per group: user 0 alone (1/4 - 3/4) / (3/4) = -2/3; user 1 alone (1/2 - 1) / 1 = -1/2.
    groups = popularity_lift(
        recommended, 2, item_counts=counts, history=history, groups=np.array([0, 1])
    )
    assert groups == pytest.approx({0: -2 / 3, 1: -1 / 2})
    # A user with no history is left out; group -1 is no group.
    history = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 1])), shape=(2, 4))
    value = popularity_lift(recommended, 2, item_counts=counts, history=history)
    assert value == pytest.approx(-2 / 3)
    groups = popularity_lift(
        recommended, 2, item_counts=counts, history=history, groups=np.array([-1, 3])
    )
    assert list(groups) == [3] and math.isnan(groups[3])


@settings(max_examples=100, deadline=None)
@given(lists_and_labels(), st.lists(st.integers(1, 50), min_size=10, max_size=10))
def test_recommending_the_profile_has_no_lift(
    case: tuple[IntArray, sp.csr_matrix, int], counts: list[int]
) -> None:
    recommended, _, _ = case
    shown = recommended >= 0
    owner = np.broadcast_to(np.arange(recommended.shape[0])[:, None], recommended.shape)
    history = sp.csr_matrix(
        (np.ones(int(shown.sum())), (owner[shown], recommended[shown])),
        shape=(recommended.shape[0], 10),
    )
    value = popularity_lift(recommended, recommended.shape[1], item_counts=counts, history=history)
    assert math.isnan(value) or value == pytest.approx(0.0, abs=1e-12)


# miscalibration


def test_miscalibration_by_hand_and_against_scipy_entropy() -> None:
    labels = LABELS[:3, :2]  # 0 {a}, 1 {a, b}, 2 {b}
    # User 0's history {0, 1}: p = ((1, 0) + (1/2, 1/2)) / 2 = (3/4, 1/4). List [2, 0]:
    # q = ((0, 1) + (1, 0)) / 2 = (1/2, 1/2). User 1 has no history: NaN, not in the mean.
    history = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 1])), shape=(2, 3))
    recommended = np.array([[2, 0], [1, -1]])
    p, q = np.array([0.75, 0.25]), np.array([0.5, 0.5])
    exact = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    per_user = miscalibration_per_user(
        recommended, 2, item_labels=labels, history=history, alpha=0.0
    )
    assert per_user[0] == pytest.approx(exact)
    assert per_user[0] == pytest.approx(entropy(p, q))
    assert math.isnan(per_user[1])
    # alpha = 0.01: q~ = 0.99 q + 0.01 p = (0.5025, 0.4975).
    value = miscalibration(recommended, 2, item_labels=labels, history=history)
    assert value == pytest.approx(entropy(p, 0.99 * q + 0.01 * p))
    # A list missing a label of the history diverges without smoothing.
    only_b = miscalibration(np.array([[2], [1]]), 1, item_labels=labels, history=history, alpha=0)
    assert only_b == math.inf


def test_miscalibration_matches_scipy_entropy_on_random_data() -> None:
    rng = np.random.default_rng(5)
    labels = random_binary(rng, (30, 4), 0.4)
    history = random_binary(rng, (70, 30), 0.15)
    recommended = random_lists(rng, 70, 30, 8)
    ours = miscalibration_per_user(recommended, 8, item_labels=labels, history=history, alpha=0.1)
    spread = labels.toarray() != 0
    spread = spread / np.maximum(spread.sum(axis=1, keepdims=True), 1)
    for user in range(70):
        held = spread[history[user].indices].sum(axis=0)
        listed = spread[[i for i in recommended[user] if i >= 0]].sum(axis=0)
        if held.sum() == 0 or listed.sum() == 0:
            assert math.isnan(ours[user])
            continue
        p, q = held / held.sum(), listed / listed.sum()
        assert ours[user] == pytest.approx(entropy(p, 0.9 * q + 0.1 * p), abs=1e-12)
    assert np.isnan(ours).sum() < 20


@settings(max_examples=150, deadline=None)
@given(lists_and_labels(), st.floats(0.0, 1.0))
def test_miscalibration_is_non_negative_and_zero_for_the_history_itself(
    case: tuple[IntArray, sp.csr_matrix, int], alpha: float
) -> None:
    recommended, labels, k = case
    n_users, n_items = recommended.shape[0], labels.shape[0]
    shown = recommended >= 0
    owner = np.broadcast_to(np.arange(n_users)[:, None], recommended.shape)
    history = sp.csr_matrix(
        (np.ones(int(shown.sum())), (owner[shown], recommended[shown])), shape=(n_users, n_items)
    )
    # The whole list as history: the list's label mix equals it, so even alpha = 0 gives 0.
    depth = recommended.shape[1]
    same = miscalibration_per_user(
        recommended, depth, item_labels=labels, history=history, alpha=0.0
    )
    assert np.all(np.isnan(same) | (np.abs(same) < 1e-12))
    cut = miscalibration_per_user(recommended, k, item_labels=labels, history=history, alpha=alpha)
    assert np.all(np.isnan(cut) | (cut >= 0.0))


# exposure_disparity


def test_exposure_disparity_by_hand() -> None:
    item_groups = np.array([0, 0, 1, -1])
    recommended = np.array([[0, 1, 2], [0, 3, 2]])
    # Rank weights 1, C = 1/log2(3), 1/2. User 0: group 0 gets 1 + C, group 1 gets 1/2;
    # user 1: group 0 gets 1, item 3 has no group, group 1 gets 1/2. Exposure: g0 2 + C,
    # g1 1, total 3 + C.
    out = exposure_disparity(recommended, 3, item_groups=item_groups)
    assert out["exposure_share"] == pytest.approx({0: (2 + C) / (3 + C), 1: 1 / (3 + C)})
    assert out["disparity"] == pytest.approx((1 + C) / (3 + C))
    assert out["relevance_share"] == {} and out["ratio"] == {}
    # Relevance summed over users per item: [1, 1, 1, 1]; g0 2, g1 1 (item 3 ignored).
    # Ratios: g0 (2 + C)/(3 + C) * 3/2, g1 3/(3 + C); disparity their difference,
    # (3C/2) / (3 + C).
    dense = np.array([[1, 0, 1, 1], [0, 1, 0, 0]])
    for relevance in (dense, sp.csr_matrix(dense)):
        out = exposure_disparity(recommended, 3, item_groups=item_groups, relevance=relevance)
        assert out["relevance_share"] == pytest.approx({0: 2 / 3, 1: 1 / 3})
        assert out["ratio"] == pytest.approx({0: 1.5 * (2 + C) / (3 + C), 1: 3 / (3 + C)})
        assert out["disparity"] == pytest.approx(1.5 * C / (3 + C))
        assert all(type(group) is int for group in out["ratio"])


def test_an_unshown_group_has_zero_exposure_and_no_relevance_means_inf() -> None:
    item_groups = np.array([0, 1, 2])
    relevance = np.array([[0.0, 2.0, 2.0]])
    out = exposure_disparity(np.array([[0, 1]]), 2, item_groups=item_groups, relevance=relevance)
    assert out["exposure_share"][2] == 0.0
    assert out["ratio"][0] == math.inf and out["ratio"][2] == 0.0
    assert out["disparity"] == math.inf


@settings(max_examples=150, deadline=None)
@given(lists_and_labels(), st.lists(st.integers(-1, 3), min_size=10, max_size=10))
def test_exposure_shares_sum_to_one(
    case: tuple[IntArray, sp.csr_matrix, int], groups: list[int]
) -> None:
    recommended, _, k = case
    groups[0] = 0
    out = exposure_disparity(recommended, k, item_groups=np.array(groups))
    shares = np.array(list(out["exposure_share"].values()))
    if not np.isnan(shares).any():
        assert shares.sum() == pytest.approx(1.0)
        assert 0.0 <= out["disparity"] <= 1.0


# utility_gap


def test_utility_gap_by_hand() -> None:
    # Group 0: (0.5 + 0.3) / 2 = 0.4 (NaN skipped); group 1: 0.9; the -1 user is no group.
    # Gap 0.5; pooled mean (0.5 + 0.3 + 0.9) / 3 = 1.7/3; relative 0.5 / (1.7/3) = 15/17.
    out = utility_gap([0.5, 0.3, np.nan, 0.9, 0.1], np.array([0, 0, 0, 1, -1]))
    assert out["by_group"] == pytest.approx({0: 0.4, 1: 0.9})
    assert out["gap"] == pytest.approx(0.5)
    assert out["relative_gap"] == pytest.approx(15 / 17)
    empty = utility_gap([np.nan, 1.0], np.array([0, -1]))
    assert empty["by_group"] == {} and math.isnan(empty["gap"])


# bad input


def _lists() -> IntArray:
    return np.array([[0, 1], [2, -1]])


HISTORY = sp.csr_matrix(np.eye(2, 4))
BAD_CALLS: list[tuple[str, Callable[[], Any]]] = [
    ("recommended", lambda: intra_list_diversity([0, 1], 1, item_labels=LABELS)),
    ("recommended", lambda: intra_list_diversity([[0.0, 1.0]], 1, item_labels=LABELS)),
    ("recommended", lambda: intra_list_diversity([[0, 4]], 2, item_labels=LABELS)),
    ("recommended", lambda: intra_list_diversity([[1, 1]], 2, item_labels=LABELS)),
    ("k", lambda: intra_list_diversity(_lists(), 3, item_labels=LABELS)),
    ("k", lambda: intra_list_diversity(_lists(), True, item_labels=LABELS)),
    ("item_labels", lambda: intra_list_diversity(_lists(), 2)),
    ("item_labels", lambda: intra_list_diversity(_lists(), 2, item_labels=LABELS.toarray())),
    ("item_vectors", lambda: intra_list_diversity(_lists(), 2, item_vectors=np.zeros((4, 2)))),
    ("item_vectors", lambda: intra_list_diversity(_lists(), 2, item_vectors=np.ones(4))),
    ("relevant", lambda: serendipity(_lists(), HISTORY[:1], 2, expected=[0])),
    ("expected", lambda: serendipity(_lists(), HISTORY, 2, expected=[[0]])),
    ("expected", lambda: serendipity(_lists(), HISTORY, 2, expected=[7])),
    ("item_counts", lambda: long_tail_share(_lists(), 2, item_counts=[1, 2, -1, 0])),
    ("item_counts", lambda: long_tail_share(_lists(), 2, item_counts=[0, 0, 0, 0])),
    ("head_share", lambda: long_tail_share(_lists(), 2, item_counts=[1] * 4, head_share=1.5)),
    ("history", lambda: popularity_lift(_lists(), 2, item_counts=[1] * 3, history=HISTORY)),
    (
        "groups",
        lambda: popularity_lift(_lists(), 2, item_counts=[1] * 4, history=HISTORY, groups=[0]),
    ),
    ("alpha", lambda: miscalibration(_lists(), 2, item_labels=LABELS, history=HISTORY, alpha=2)),
    ("history", lambda: miscalibration(_lists(), 2, item_labels=LABELS, history=HISTORY.T)),
    ("item_groups", lambda: exposure_disparity(_lists(), 2, item_groups=np.full(4, -1))),
    ("item_groups", lambda: exposure_disparity(_lists(), 2, item_groups=np.array([0, 0, -2, 1]))),
    (
        "relevance",
        lambda: exposure_disparity(_lists(), 2, item_groups=np.zeros(4, int), relevance=HISTORY.T),
    ),
    (
        "relevance",
        lambda: exposure_disparity(_lists(), 2, item_groups=np.zeros(4, int), relevance=-HISTORY),
    ),
    ("per_user_metric", lambda: utility_gap([["a"]], np.array([0]))),
    ("user_groups", lambda: utility_gap([0.1, 0.2], np.array([0]))),
    ("user_groups", lambda: utility_gap([0.1, 0.2], np.array([0.0, 1.0]))),
]


@pytest.mark.parametrize(("field", "call"), BAD_CALLS)
def test_bad_input_is_rejected_naming_the_argument(field: str, call: Callable[[], Any]) -> None:
    with pytest.raises(InvalidInput, match=field) as caught:
        call()
    assert caught.value.field == field


def elliot_short_head(counts: npt.NDArray[np.int64], pop_ratio: float) -> set[int]:
    """Elliot's `Popularity.get_short_head` (sisinflab/elliot,
    elliot/evaluation/popularity_utils/popularity.py), restated: items by decreasing
    popularity (a stable sort of item order), each appended to the head until the
    appended popularity reaches `pop_ratio` of all transactions."""
    ordered = sorted(enumerate(counts.tolist()), key=lambda pair: pair[1], reverse=True)
    limit = float(counts.sum()) * pop_ratio
    head: list[int] = []
    for item, pop in ordered:
        head.append(item)
        limit -= pop
        if limit <= 0:
            break
    return set(head)


@pytest.mark.parametrize("pop_ratio", [0.5, 0.8, 0.95])
def test_long_tail_share_is_elliots_aplt(pop_ratio: float) -> None:
    """APLT as Elliot computes it: per user, the share of the list outside the short head,
    then the mean over users."""
    rng = np.random.default_rng(11)
    counts = rng.zipf(1.6, size=60).clip(max=500).astype(np.int64)
    counts[rng.random(60) < 0.1] = 0
    recommended = random_lists(rng, 50, 60, 10)
    head = elliot_short_head(counts, pop_ratio)
    per_user = [
        np.mean([i not in head for i in row if i >= 0]) for row in recommended if (row >= 0).any()
    ]
    ours = long_tail_share(recommended, 10, item_counts=counts, head_share=pop_ratio)
    assert ours == pytest.approx(float(np.mean(per_user)), abs=1e-12)
