"""Known answers for epsilon-greedy, UCB1 and Beta-Bernoulli Thompson sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from penchant.bandits import UCB1, BetaThompson, EpsilonGreedy
from penchant.errors import InvalidInput


def test_ucb1_index_on_hand_computed_counts() -> None:
    table = np.array([[10.0, 6.0], [5.0, 1.0], [20.0, 15.0]])  # pulls, reward sums
    n_total = 35
    for c in (1.0, 0.3):
        expected = [
            6 / 10 + c * math.sqrt(2 * math.log(n_total) / 10),  # 1.443 for c = 1
            1 / 5 + c * math.sqrt(2 * math.log(n_total) / 5),  # 1.393
            15 / 20 + c * math.sqrt(2 * math.log(n_total) / 20),  # 1.346
        ]
        np.testing.assert_allclose(UCB1(c=c).scores(table), expected, rtol=1e-12)
    assert UCB1(c=1.0).scores(table)[0] == pytest.approx(1.4432, abs=1e-4)
    # c = 1 favours the first arm; with little exploration the best mean wins
    assert UCB1(c=1.0).probabilities(table, None, np.random.default_rng(0)).tolist() == [1, 0, 0]
    assert UCB1(c=0.3).probabilities(table, None, np.random.default_rng(0)).tolist() == [0, 0, 1]


def test_ucb1_tries_arms_never_pulled_first_and_breaks_ties_uniformly() -> None:
    rng = np.random.default_rng(0)
    fresh = np.array([[10.0, 9.0], [0.0, 0.0], [0.0, 0.0]])
    assert UCB1().probabilities(fresh, None, rng).tolist() == [0.0, 0.5, 0.5]
    picks = {UCB1().choose(fresh, None, rng) for _ in range(50)}
    assert picks == {(1, 0.5), (2, 0.5)}
    tied = np.array([[2.0, 1.0], [4.0, 2.0], [1.0, 0.0]])  # means 0.5, 0.5, 0
    assert UCB1(c=0.0).probabilities(tied, None, rng).tolist() == [0.5, 0.5, 0.0]


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.25, 1.0])
def test_epsilon_greedy_propensities_follow_the_formula(epsilon: float) -> None:
    table = np.array([[10.0, 5.0], [4.0, 2.0], [3.0, 0.0]])  # means 0.5, 0.5, 0: two tied
    policy = EpsilonGreedy(epsilon=epsilon)
    best, other = epsilon / 3 + (1 - epsilon) / 2, epsilon / 3
    p = policy.probabilities(table, None, np.random.default_rng(0))
    np.testing.assert_allclose(p, [best, best, other], atol=1e-15)
    rng = np.random.default_rng(3)
    for _ in range(100):
        index, propensity = policy.choose(table, None, rng)
        assert propensity == pytest.approx(best if index < 2 else other, abs=1e-15)


def test_epsilon_greedy_treats_an_arm_never_pulled_as_the_best() -> None:
    table = np.array([[10.0, 9.0], [4.0, 2.0], [0.0, 0.0]])
    p = EpsilonGreedy(epsilon=0.2).probabilities(table, None, np.random.default_rng(0))
    np.testing.assert_allclose(p, [0.2 / 3, 0.2 / 3, 0.2 / 3 + 0.8])


def test_non_bernoulli_rewards_are_fine_for_epsilon_greedy_and_ucb1() -> None:
    for policy in (EpsilonGreedy(), UCB1()):
        policy.partial_fit(None, "a", -3.5).partial_fit(None, "a", 120.0)
        np.testing.assert_array_equal(policy.stats_["a"], [2.0, 116.5])


def exact_win_probability(a1: float, b1: float, a2: float, b2: float) -> float:
    """P(Beta(a1, b1) > Beta(a2, b2)) by numerical integration."""

    def integrand(t: float) -> float:
        return float(stats.beta.pdf(t, a1, b1) * stats.beta.cdf(t, a2, b2))

    value, _ = integrate.quad(integrand, 0.0, 1.0)
    return float(value)


def test_beta_thompson_two_arm_probability_matches_integration() -> None:
    table = np.array([[10.0, 6.0], [8.0, 3.0]])  # posteriors Beta(7, 5) and Beta(4, 6)
    exact = exact_win_probability(7, 5, 4, 6)
    assert 0.8 < exact < 0.9  # a clear but not certain favourite
    many = BetaThompson(n_draws=20_000).probabilities(table, None, np.random.default_rng(0))
    assert many[0] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000))
    # with the default draws, each decision's estimate is unbiased: their mean converges
    default = BetaThompson()
    mean = np.mean(
        [default.probabilities(table, None, np.random.default_rng(s))[0] for s in range(40)]
    )
    assert mean == pytest.approx(exact, abs=0.01)


def test_beta_thompson_priors_and_fractional_rewards() -> None:
    policy = BetaThompson(prior_alpha=2.0, prior_beta=3.0)
    policy.fit(None, ["a", "a", "a", "b"], [0.5, 1.0, 0.0, 0.25])
    alpha, beta = policy.posterior(np.stack([policy.stats_["a"], policy.stats_["b"]]))
    np.testing.assert_allclose(alpha, [2.0 + 1.5, 2.0 + 0.25])
    np.testing.assert_allclose(beta, [3.0 + 1.5, 3.0 + 0.75])
    exact = exact_win_probability(3.5, 4.5, 2.25, 3.75)
    p = policy.clone(n_draws=20_000).probabilities(
        np.stack([policy.stats_["a"], policy.stats_["b"]]), None, np.random.default_rng(1)
    )
    assert p[0] == pytest.approx(exact, abs=0.015)


def test_beta_thompson_counts_a_pending_pull_as_a_failure_and_an_early_reward_as_none() -> None:
    policy = BetaThompson()
    # a pull whose reward has not arrived; a reward that arrived before its pull
    alpha, beta = policy.posterior(np.array([[3.0, 1.0], [0.0, 1.0]]))
    np.testing.assert_allclose(alpha, [2.0, 2.0])
    np.testing.assert_allclose(beta, [3.0, 1.0])


@pytest.mark.parametrize("reward", [1.5, -0.1])
def test_beta_thompson_needs_rewards_in_the_unit_interval(reward: float) -> None:
    policy = BetaThompson()
    with pytest.raises(InvalidInput) as info:
        policy.reward_delta(None, reward)
    assert info.value.field == "reward"
    with pytest.raises(InvalidInput) as info:
        policy.partial_fit(None, "a", reward)
    assert info.value.field == "reward"
    with pytest.raises(InvalidInput) as info:
        policy.fit(None, ["a", "b"], [0.0, reward])
    assert info.value.field == "rewards"
    assert "stats_" not in vars(policy)


def test_non_contextual_policies_ignore_the_context() -> None:
    table = np.array([[5.0, 2.0], [6.0, 4.0], [0.0, 0.0]])
    for policy in (EpsilonGreedy(), UCB1(), BetaThompson()):
        with_x = policy.probabilities(table, np.array([3.0, -1.0]), np.random.default_rng(2))
        without = policy.probabilities(table, None, np.random.default_rng(2))
        assert with_x.tolist() == without.tolist()
        assert policy.pull_delta([9.0, 9.0]).tolist() == policy.pull_delta(None).tolist()
