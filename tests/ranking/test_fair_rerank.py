"""The re-rankers for calibration, the long tail, popularity and fair exposure, by hand and
against objectives computed here (KL with scipy, every subset for the popularity penalty)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy

from penchant.errors import InvalidInput
from penchant.ranking.fair_rerank import (
    calibrated,
    fair_exposure,
    long_tail,
    popularity_penalty,
    relative_to_top,
)

REL = np.array([1.0, 0.9, 0.8, 0.7])


def test_strength_zero_keeps_the_relevance_order() -> None:
    shuffled = np.array([0.2, 0.9, 0.5, 0.7])
    order = [1, 3, 2, 0]
    shares = np.eye(2)[[0, 1, 0, 1]]
    assert calibrated(shuffled, shares, np.array([0.5, 0.5]), 4, 0.0) == order
    assert long_tail(shuffled, np.array([1, 0, 1, 0], bool), 0.5, 4, 0.0) == order
    assert fair_exposure(shuffled, np.array([0, 1, 0, 1]), np.array([0.5, 0.5]), 4, 0.0) == order
    assert popularity_penalty(shuffled, np.array([1.0, 0.0, 0.5, 0.2]), 4, 0.0) == order


def test_calibration_mixes_the_labels_as_the_history_does() -> None:
    # items 0, 1 are label A, items 2, 3 label B; the person's history is half A, half B
    shares = np.eye(2)[[0, 0, 1, 1]]
    target = np.array([0.5, 0.5])
    assert calibrated(REL, shares, target, 2, 0.0) == [0, 1]
    assert calibrated(REL, shares, target, 2, 0.9) == [0, 2]
    # a history of A only keeps the list on A
    assert calibrated(REL, shares, np.array([1.0, 0.0]), 2, 0.9) == [0, 1]
    # no history: relevance order
    assert calibrated(REL, shares, np.zeros(2), 3, 0.9) == [0, 1, 2]


def test_each_calibration_pick_maximizes_its_objective() -> None:
    rng = np.random.default_rng(3)
    relevance = rng.random(12)
    raw = rng.random((12, 4)) * (rng.random((12, 4)) < 0.5)
    raw[raw.sum(axis=1) == 0, 0] = 1.0
    shares = raw / raw.sum(axis=1, keepdims=True)
    target = np.array([0.4, 0.3, 0.2, 0.1])
    strength, alpha = 0.7, 0.01
    picked = calibrated(relevance, shares, target, 6, strength, alpha=alpha)
    unit = (relevance - relevance.min()) / (relevance.max() - relevance.min())
    for step in range(1, 7):
        before = picked[: step - 1]

        def objective(row: int, before: list[int] = before) -> float:
            rows = [*before, row]
            q = shares[rows].mean(axis=0)
            kl = entropy(target, (1 - alpha) * q + alpha * target)
            return float((1 - strength) * unit[rows].sum() - strength * kl)

        open_rows = [r for r in range(12) if r not in before]
        best = max(objective(r) for r in open_rows)
        assert objective(picked[step - 1]) == pytest.approx(best, abs=1e-9)


def test_long_tail_by_hand() -> None:
    tail = np.array([False, False, True, True])
    # relevance in [0, 1]: 1, 2/3, 1/3, 0. First pick, strength 0.5 and P(tail) 0.5:
    # 0.5 rel + 0.5 x 0.5 -> 0.75, 0.583, 0.417, 0.25: item 0 (head). Then the head is
    # covered: 0.333 + 0, 0.167 + 0.25, 0 + 0.25 -> item 2 (tail).
    assert long_tail(REL, tail, 0.5, 2, 0.5, smooth=False) == [0, 2]
    assert long_tail(REL, tail, 0.5, 2, 0.0, smooth=False) == [0, 1]
    # a person who never takes tail items is not pushed towards them
    assert long_tail(REL, tail, 0.0, 2, 0.5, smooth=False) == [0, 1]
    # smooth: after item 0 the head's share of the list is 1, so its worth is (1 - 1)^1 = 0
    # and the tail's (1 - 0)^1 = 1, as binary; then with one of each, both are (1/2)^2:
    # 0.5 x rel + 0.5 x 0.5 x 0.25 -> item 1 (0.333 + 0.0625) beats item 3 (0 + 0.0625)
    assert long_tail(REL, tail, 0.5, 3, 0.5) == [0, 2, 1]
    assert long_tail(REL, tail, 0.5, 3, 0.5, smooth=False) == [0, 2, 1]


def test_smooth_xquad_adds_more_tail_items_than_binary() -> None:
    relevance = np.linspace(1.0, 0.5, 20)
    tail = np.arange(20) >= 10  # the ten most relevant are head
    binary = long_tail(relevance, tail, 0.5, 10, 0.8, smooth=False)
    smooth = long_tail(relevance, tail, 0.5, 10, 0.8)
    assert tail[binary].sum() == 1
    # (1 - share)^|S| lets a group that holds half the list still count: [0, 10, 1, 11, ...]
    assert smooth[:4] == [0, 10, 1, 11] and tail[smooth].sum() == 2


def test_popularity_penalty_by_hand() -> None:
    popularity = np.array([1.0, 0.0, 0.5, 0.1])
    # relevance as a share of the top: 1, 0.9, 0.8, 0.7. Strength 0.3:
    # 0.7 rel - 0.3 pop -> 0.4, 0.63, 0.41, 0.46: rows 1 and 3, shown by relevance
    assert popularity_penalty(REL, popularity, 2, 0.3) == [1, 3]
    # k 3 adds row 2 (0.41 beats 0.40), and the three are shown 1, 2, 3, not 1, 3, 2
    assert popularity_penalty(REL, popularity, 3, 0.3) == [1, 2, 3]
    # strength 0.2: 0.6, 0.72, 0.54, 0.54: the most popular item still earns its place
    assert popularity_penalty(REL, popularity, 2, 0.2) == [0, 1]
    # strength 1: popularity alone, least popular first, shown by relevance
    assert popularity_penalty(REL, popularity, 2, 1.0) == [1, 3]
    # the relevance's unit does not matter
    assert popularity_penalty(REL * 40, popularity, 3, 0.3) == [1, 2, 3]


def test_relevance_relative_to_the_top() -> None:
    assert relative_to_top(np.array([4.0, 2.0, -1.0])) == pytest.approx([1.0, 0.5, -0.25])
    # a top that is not positive: mapped to [0, 1]
    assert relative_to_top(np.array([-1.0, -3.0])) == pytest.approx([1.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.01, 1.0), min_size=2, max_size=8),
    st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8),
    st.integers(1, 4),
    st.floats(0.0, 0.99),
)
def test_popularity_penalty_picks_the_best_set_in_relevance_order(
    relevance: list[float], popularity: list[float], k: int, strength: float
) -> None:
    rel = np.array(relevance)
    pop = np.array(popularity[: len(rel)])
    picked = popularity_penalty(rel, pop, k, strength)
    k = min(k, len(rel))
    unit = rel / rel.max()

    def objective(rows: tuple[int, ...]) -> float:
        return float(((1 - strength) * unit[list(rows)] - strength * pop[list(rows)]).sum())

    best = max(objective(rows) for rows in itertools.combinations(range(len(rel)), k))
    assert len(set(picked)) == k
    assert objective(tuple(picked)) == pytest.approx(best, abs=1e-6)
    assert all(rel[a] >= rel[b] for a, b in itertools.pairwise(picked))


def test_a_stronger_popularity_penalty_never_raises_the_mean_popularity() -> None:
    rng = np.random.default_rng(5)
    relevance, popularity = rng.random(60), rng.random(60) ** 3
    means = [
        popularity[popularity_penalty(relevance, popularity, 10, s)].mean()
        for s in np.linspace(0, 1, 21)
    ]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(means))
    assert means[-1] < means[0]


def test_fair_exposure_pulls_the_short_group_up() -> None:
    relevance = np.array([1.0, 0.9, 0.8, 0.1, 0.05])
    groups = np.array([0, 0, 0, 1, 1])
    equal = np.array([0.5, 0.5])
    assert fair_exposure(relevance, groups, equal, 3, 0.0) == [0, 1, 2]
    # strength 1: position 1 is a tie (both groups owe 0.5) won by relevance; then group 0
    # has 1 of 1.63 exposure given and group 1 none, so group 1's best item comes next
    assert fair_exposure(relevance, groups, equal, 3, 1.0)[:2] == [0, 3]

    def exposure_share(order: list[int]) -> float:
        weights = 1 / np.log2(np.arange(2, len(order) + 2))
        return float(weights[groups[order] == 1].sum() / weights.sum())

    shares = [exposure_share(fair_exposure(relevance, groups, equal, 3, s)) for s in (0, 0.5, 1)]
    assert shares[0] == 0.0 and shares[0] <= shares[1] <= shares[2]
    assert abs(shares[2] - 0.5) < 0.15


def test_bad_knobs_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        long_tail(REL, np.zeros(4, bool), 0.5, 2, 1.5)
    assert info.value.field == "strength"
    with pytest.raises(InvalidInput) as info:
        long_tail(REL, np.zeros(4, bool), 2.0, 2, 0.5)
    assert info.value.field == "tail_affinity"
    with pytest.raises(InvalidInput) as info:
        fair_exposure(REL, np.array([0, 1, 2, 0]), np.array([0.5, 0.5]), 2, 0.5)
    assert info.value.field == "groups"
    with pytest.raises(InvalidInput) as info:
        calibrated(REL, np.ones((3, 2)), np.array([0.5, 0.5]), 2, 0.5)
    assert info.value.field == "label_shares"
    for popularity in (np.ones(3), np.array([0.1, 0.2, 1.5, 0.0]), np.full(4, np.nan)):
        with pytest.raises(InvalidInput) as info:
            popularity_penalty(REL, popularity, 2, 0.5)
        assert info.value.field == "popularity"
