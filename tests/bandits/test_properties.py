"""Hypothesis properties: choice probabilities are always distributions, sums are sums."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.bandits import UCB1, BetaThompson, EpsilonGreedy, LinearThompson, LinUCB, Policy

SIMPLE = [EpsilonGreedy(epsilon=0.2), UCB1(), BetaThompson(n_draws=50)]
LINEAR = [LinUCB(alpha=0.5), LinearThompson(n_draws=50)]
DETERMINISTIC = (UCB1, LinUCB)


def check_distribution(policy: Policy, table: np.ndarray, x: np.ndarray | None, seed: int) -> None:
    p = policy.probabilities(table, x, np.random.default_rng(seed))
    assert p.shape == (len(table),)
    assert (p >= 0).all() and abs(p.sum() - 1.0) < 1e-9
    index, propensity = policy.choose(table, x, np.random.default_rng(seed))
    assert propensity == p[index] > 0
    if isinstance(policy, DETERMINISTIC):  # deterministic but for ties, shared equally
        positive = p[p > 0]
        assert np.allclose(positive, positive[0])


@settings(max_examples=60, deadline=None)
@given(
    pulls=st.lists(st.integers(0, 60), min_size=1, max_size=8),
    shares=st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_simple_policies_give_distributions(
    pulls: list[int], shares: list[float], seed: int
) -> None:
    n = np.array(pulls, dtype=np.float64)
    table = np.stack([n, n * np.array(shares[: len(n)])], axis=1)
    for policy in SIMPLE:
        check_distribution(policy, table, None, seed)


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 4),
    rows=st.lists(st.integers(0, 6), min_size=1, max_size=5),
    values=st.lists(st.floats(-3.0, 3.0), min_size=200, max_size=200),
    seed=st.integers(0, 2**32 - 1),
)
def test_linear_policies_give_distributions(
    d: int, rows: list[int], values: list[float], seed: int
) -> None:
    pool = np.array(values)
    for policy in LINEAR:
        table = np.zeros((len(rows), policy.width(d)))
        used = 0
        for arm, count in enumerate(rows):
            for _ in range(count):
                x = pool[used : used + d]
                table[arm] += policy.pull_delta(x) + policy.reward_delta(x, pool[used + d] / 3)
                used += d + 1
        check_distribution(policy, table, pool[-d:], seed)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 40),
    cut=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_fit_is_a_sum_whatever_the_order_and_the_split(n: int, cut: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    contexts = rng.normal(size=(n, 3))
    arms = rng.choice(["a", "b", "c"], size=n).tolist()
    rewards = rng.random(n)
    order = rng.permutation(n)
    cut = min(cut, n)
    for policy in (EpsilonGreedy(), BetaThompson(), LinUCB()):
        whole = policy.clone().fit(contexts, arms, rewards).stats_
        shuffled = policy.clone().fit(contexts[order], [arms[i] for i in order], rewards[order])
        head = policy.clone().fit(contexts[:cut], arms[:cut], rewards[:cut]).stats_
        tail = policy.clone().fit(contexts[cut:], arms[cut:], rewards[cut:]).stats_
        zeros = np.zeros(policy.width(3))
        for arm, vec in whole.items():
            np.testing.assert_allclose(shuffled.stats_[arm], vec, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(
                head.get(arm, zeros) + tail.get(arm, zeros), vec, rtol=1e-9, atol=1e-12
            )
