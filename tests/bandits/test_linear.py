"""Known answers for LinUCB and linear Thompson sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy import stats

from penchant.bandits import LinearThompson, LinUCB
from penchant.errors import InvalidInput


def make_log(seed: int = 0, n: int = 60, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    contexts = rng.normal(size=(n, d))
    rewards = contexts @ np.array([0.5, -1.0, 0.25, 2.0])[:d] + rng.normal(scale=0.1, size=n)
    return contexts, rewards


def test_deltas_are_the_outer_product_and_the_scaled_context() -> None:
    x = np.array([1.0, 2.0, -3.0])
    policy = LinUCB()
    np.testing.assert_array_equal(policy.pull_delta(x), [*np.outer(x, x).ravel(), 0, 0, 0])
    np.testing.assert_array_equal(policy.reward_delta(x, 0.5), [0.0] * 9 + [0.5, 1.0, -1.5])
    assert policy.width(24) == 24 * 24 + 24


def test_linucb_theta_is_the_ridge_regression_solution() -> None:
    contexts, rewards = make_log()
    lam = 2.5
    arms = ["a"] * 40 + ["b"] * 20
    policy = LinUCB(regularization=lam).fit(contexts, arms, rewards)
    theta = policy.coefficients(np.stack([policy.stats_["a"], policy.stats_["b"]]), 4)
    for row, rows in ((0, slice(0, 40)), (1, slice(40, 60))):
        x, r = contexts[rows], rewards[rows]
        # ridge as least squares on the system augmented with sqrt(λ)·I and zeros
        augmented = np.vstack([x, math.sqrt(lam) * np.eye(4)])
        expected, *_ = np.linalg.lstsq(augmented, np.r_[r, np.zeros(4)], rcond=None)
        np.testing.assert_allclose(theta[row], expected, rtol=1e-9, atol=1e-12)


def test_linucb_score_matches_the_hand_formula() -> None:
    contexts, rewards = make_log(seed=1, n=30, d=3)
    lam, alpha = 0.7, 1.3
    arms = ["a"] * 25 + ["b"] * 5
    policy = LinUCB(alpha=alpha, regularization=lam).fit(contexts, arms, rewards)
    table = np.stack([policy.stats_["a"], policy.stats_["b"], np.zeros(12)])
    x = np.array([0.3, -1.2, 0.8])
    expected = []
    for rows in (slice(0, 25), slice(25, 30), slice(0, 0)):
        a = lam * np.eye(3) + contexts[rows].T @ contexts[rows]
        b = contexts[rows].T @ rewards[rows]
        theta = scipy.linalg.solve(a, b, assume_a="pos")
        expected.append(x @ theta + alpha * math.sqrt(x @ scipy.linalg.inv(a) @ x))
    np.testing.assert_allclose(policy.scores(table, x), expected, rtol=1e-10)
    # an arm never seen scores alpha·|x|/sqrt(λ)
    assert expected[2] == pytest.approx(alpha * np.linalg.norm(x) / math.sqrt(lam))
    p = policy.probabilities(table, x, np.random.default_rng(0))
    assert p.tolist() == [float(i == int(np.argmax(expected))) for i in range(3)]


def test_linucb_breaks_ties_between_unseen_arms_uniformly() -> None:
    policy = LinUCB()
    x = np.array([1.0, 0.5])
    p = policy.probabilities(np.zeros((4, 6)), x, np.random.default_rng(0))
    assert p.tolist() == [0.25] * 4
    picks = {policy.choose(np.zeros((4, 6)), x, np.random.default_rng(s)) for s in range(60)}
    assert picks == {(i, 0.25) for i in range(4)}


def test_linear_thompson_posterior_matches_the_hand_formula() -> None:
    contexts, rewards = make_log(seed=2, n=20, d=2)
    v, lam = 0.4, 1.5
    policy = LinearThompson(v=v, regularization=lam).fit(contexts, ["a"] * 20, rewards)
    x = np.array([0.5, -0.25])
    a = lam * np.eye(2) + contexts.T @ contexts
    mean, sd = policy.posterior(policy.stats_["a"][None, :], x)
    assert mean[0] == pytest.approx(x @ scipy.linalg.solve(a, contexts.T @ rewards))
    assert sd[0] == pytest.approx(v * math.sqrt(x @ scipy.linalg.inv(a) @ x))


def test_linear_thompson_two_arm_probability_is_a_difference_of_normals() -> None:
    contexts, rewards = make_log(seed=3, n=16, d=2)
    rewards = rewards * 0.1
    policy = LinearThompson(v=0.5, n_draws=20_000)
    policy.fit(contexts, ["a"] * 10 + ["b"] * 6, rewards)
    table = np.stack([policy.stats_["a"], policy.stats_["b"]])
    x = np.array([1.0, 0.5])
    moments = []
    for rows in (slice(0, 10), slice(10, 16)):
        a = np.eye(2) + contexts[rows].T @ contexts[rows]
        moments.append(
            (
                x @ np.linalg.solve(a, contexts[rows].T @ rewards[rows]),
                0.25 * x @ np.linalg.solve(a, x),
            )
        )
    (m1, s1), (m2, s2) = moments
    exact = stats.norm.cdf((m1 - m2) / math.sqrt(s1 + s2))  # P(N(m1, s1) > N(m2, s2))
    assert 0.1 < exact < 0.9
    p = policy.probabilities(table, x, np.random.default_rng(0))
    assert p[0] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000))


def test_a_singular_system_is_refused() -> None:
    broken = np.r_[-np.eye(2).ravel(), 0.0, 0.0][None, :]  # gram = -λI makes A singular
    with pytest.raises(InvalidInput) as info:
        LinUCB().probabilities(broken, np.ones(2), np.random.default_rng(0))
    assert info.value.field == "stats"


def test_a_context_that_does_not_fit_the_statistics_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        LinUCB().probabilities(np.zeros((2, 6)), np.ones(3), np.random.default_rng(0))
    assert info.value.field == "stats"
    assert "(K, 12)" in info.value.message
