"""`PolicyContract`: the behaviour every bandit `Policy` must show.

Subclass it in a test module, implement `make_policy` (a new policy whose hyperparameters
learn the toy problems below quickly), set `contextual` to say whether the policy uses the
context, and list `changed_params` (each dict must change the choice probabilities on the
contract's logged data); every test below then runs against that policy.

The toy problems, with contexts x = [1, g, u] (g a fair coin, u uniform on [0, 1]):
- a logged history over arms a, b, c with unequal pulls (`log`), fitted into statistics;
- three Bernoulli arms with means 0.1, 0.5 and 0.9 whatever the context;
- two arms whose better one flips with g (means 0.9 and 0.1 when g = 0, the reverse when
  g = 1): a contextual policy must learn it, a non-contextual one cannot.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest

from penchant.bandits import POLICIES, Policy, decode_stats, encode_stats, make_policy
from penchant.bandits import policy_config as config_of
from penchant.errors import InvalidInput

Log = tuple[np.ndarray[Any, Any], list[str], np.ndarray[Any, Any]]

#: Contexts have this many features: a constant, a coin and a uniform number.
N_FEATURES = 3


def toy_context(rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """A context [1, g, u] with g a fair coin and u uniform on [0, 1]."""
    return np.array([1.0, float(rng.integers(2)), rng.random()])


def play(
    policy: Policy, means: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]], rounds: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Run a policy online on Bernoulli arms; the chosen arm and the best arm per round.

    Args:
        policy: a new policy (it is fitted as it plays).
        means: each arm's success probability given the context.
        rounds: how many decisions.
    """
    rng = np.random.default_rng(7)
    chosen = np.zeros(rounds, dtype=np.int64)
    best = np.zeros(rounds, dtype=np.int64)
    for t in range(rounds):
        x = toy_context(rng)
        p = means(x)
        arms = [f"arm{i}" for i in range(len(p))]
        pick = policy.select(x, arms, rng)
        chosen[t] = arms.index(pick.arm)
        best[t] = int(np.argmax(p))
        policy.partial_fit(x, pick.arm, float(rng.random() < p[chosen[t]]))
    return chosen, best


class PolicyContract(ABC):
    """The shared test suite; see the module docstring."""

    contextual: ClassVar[bool] = False
    changed_params: ClassVar[list[dict[str, Any]]] = []

    @abstractmethod
    def make_policy(self) -> Policy:
        """A new policy with hyperparameters that learn the toy problems quickly."""

    @pytest.fixture
    def log(self) -> Log:
        rng = np.random.default_rng(0)
        n = 400
        contexts = np.stack([toy_context(rng) for _ in range(n)])
        arms = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.1, 0.3]).tolist()
        g = contexts[:, 1]
        means = {"a": 0.7 + 0 * g, "b": 0.3 + 0.4 * g, "c": 0.5 - 0.3 * g}
        p = np.choose(np.searchsorted(["a", "b", "c"], arms), [means[k] for k in "abc"])
        return contexts, arms, (rng.random(n) < p).astype(np.float64)

    @pytest.fixture
    def fitted(self, log: Log) -> Policy:
        return self.make_policy().fit(*log)

    @pytest.fixture
    def stats(self, fitted: Policy) -> np.ndarray[Any, Any]:
        """Rows for a, b, c and two arms never seen (zeros)."""
        zeros = np.zeros(fitted.width(N_FEATURES))
        return np.stack([fitted.stats_[k] for k in "abc"] + [zeros, zeros])

    @pytest.fixture
    def contexts(self) -> list[np.ndarray[Any, Any]]:
        return [np.array([1.0, g, u]) for g in (0.0, 1.0) for u in (0.0, 0.5, 1.0)]

    # -- the statistics ----------------------------------------------------------------------
    def test_declares_its_kind_and_width(self) -> None:
        policy = self.make_policy()
        assert policy.contextual is self.contextual
        assert policy.width(N_FEATURES) >= 1
        if self.contextual:
            with pytest.raises(InvalidInput):
                policy.width(0)
        else:
            assert policy.width(1) == policy.width(24) == policy.width(0)

    def test_deltas_have_the_width_and_a_zero_reward_adds_nothing(self) -> None:
        policy = self.make_policy()
        x = np.array([1.0, 1.0, 0.25])
        pull = policy.pull_delta(x)
        assert pull.dtype == np.float64
        assert pull.shape == (policy.width(N_FEATURES),)
        assert np.any(pull != 0)
        assert policy.reward_delta(x, 0.0).shape == pull.shape
        assert not np.any(policy.reward_delta(x, 0.0))
        assert np.any(policy.reward_delta(x, 1.0))

    def test_fit_equals_the_sum_of_deltas_and_of_partial_fits(self, log: Log) -> None:
        contexts, arms, rewards = log
        fitted = self.make_policy().fit(contexts, arms, rewards)
        summed = {k: np.zeros(fitted.width(N_FEATURES)) for k in "abc"}
        online = self.make_policy()
        for x, arm, r in zip(contexts, arms, rewards, strict=True):
            summed[arm] += self.make_policy().pull_delta(x)
            summed[arm] += self.make_policy().reward_delta(x, float(r))
            online.partial_fit(x, arm, float(r))
        assert set(fitted.stats_) == set(online.stats_) == {"a", "b", "c"}
        for k in "abc":
            np.testing.assert_allclose(fitted.stats_[k], summed[k], rtol=1e-10, atol=1e-9)
            np.testing.assert_allclose(online.stats_[k], summed[k], rtol=1e-10, atol=1e-9)
        assert fitted.n_features_ == online.n_features_ == N_FEATURES

    def test_fit_starts_over(self, log: Log) -> None:
        contexts, arms, rewards = log
        again = self.make_policy().fit(*log).fit(contexts[:50], arms[:50], rewards[:50])
        fresh = self.make_policy().fit(contexts[:50], arms[:50], rewards[:50])
        assert set(again.stats_) == set(fresh.stats_)
        for k, vec in fresh.stats_.items():
            np.testing.assert_allclose(again.stats_[k], vec)

    def test_stats_survive_bytes(self, fitted: Policy) -> None:
        width = fitted.width(N_FEATURES)
        for vec in fitted.stats_.values():
            assert np.array_equal(decode_stats(encode_stats(vec), width), vec)
        assert not np.any(decode_stats(None, width))
        with pytest.raises(InvalidInput):
            decode_stats(encode_stats(fitted.stats_["a"])[:-8], width)

    # -- choices and propensities ------------------------------------------------------------
    def test_probabilities_are_a_distribution(
        self, fitted: Policy, stats: np.ndarray[Any, Any], contexts: list[np.ndarray[Any, Any]]
    ) -> None:
        rng = np.random.default_rng(1)
        for x in contexts:
            for table in (stats, stats[:3], np.zeros_like(stats), stats[:1]):
                p = fitted.probabilities(table, x, rng)
                assert p.shape == (len(table),)
                assert (p >= 0).all()
                assert p.sum() == pytest.approx(1.0, abs=1e-9)
            assert fitted.probabilities(stats[:1], x, rng) == pytest.approx([1.0])

    def test_arms_never_seen_start_from_zeros_and_are_treated_alike(
        self, fitted: Policy, stats: np.ndarray[Any, Any]
    ) -> None:
        x = np.array([1.0, 0.0, 0.5])
        fresh = self.make_policy()
        picks = [fresh.select(x, ["p", "q"], np.random.default_rng(s)) for s in range(200)]
        assert {pick.arm for pick in picks} == {"p", "q"}
        tolerance = 0.1 if fresh.monte_carlo else 1e-12
        for pick in picks:
            assert pick.propensity == pytest.approx(0.5, abs=tolerance)
        p = fitted.probabilities(
            np.zeros((4, fitted.width(N_FEATURES))), x, np.random.default_rng(0)
        )
        np.testing.assert_allclose(p, 0.25, atol=tolerance)
        # an arm missing from stats_ is a row of zeros
        for seed in range(20):
            pick = fitted.select(x, ["a", "new"], np.random.default_rng(seed))
            index, propensity = fitted.choose(stats[[0, 3]], x, np.random.default_rng(seed))
            assert pick == (["a", "new"][index], propensity)

    def test_propensity_is_the_probability_of_the_choice(
        self, fitted: Policy, stats: np.ndarray[Any, Any], contexts: list[np.ndarray[Any, Any]]
    ) -> None:
        for seed, x in enumerate(contexts * 5):
            p = fitted.probabilities(stats, x, np.random.default_rng(seed))
            index, propensity = fitted.choose(stats, x, np.random.default_rng(seed))
            assert 0 < propensity <= 1
            assert propensity == p[index]

    def test_same_seed_same_choices(self, fitted: Policy, stats: np.ndarray[Any, Any]) -> None:
        x = np.array([1.0, 1.0, 0.3])
        arms = ["a", "b", "c", "d", "e"]
        first, second = np.random.default_rng(5), np.random.default_rng(5)
        for _ in range(20):
            assert fitted.choose(stats, x, first) == fitted.choose(stats, x, second)
            assert fitted.select(x, arms, first) == fitted.select(x, arms, second)

    def test_choice_frequencies_match_probabilities(
        self, fitted: Policy, stats: np.ndarray[Any, Any]
    ) -> None:
        # Each choice is drawn from the distribution `probabilities` gives for the same rng
        # state, so the counts of each arm are sums of Bernoulli(p) and the z-scores small.
        x = np.array([1.0, 0.0, 0.8])
        calls = 1000
        expected = np.zeros(len(stats))
        variance = np.zeros(len(stats))
        counts = np.zeros(len(stats))
        for seed in range(calls):
            p = fitted.probabilities(stats, x, np.random.default_rng(seed))
            expected += p
            variance += p * (1 - p)
            counts[fitted.choose(stats, x, np.random.default_rng(seed))[0]] += 1
        assert counts.sum() == calls
        assert (counts[expected == 0] == 0).all()
        spread = variance > 0
        assert spread.sum() >= 2  # the test data always leaves a choice to chance
        z = (counts[spread] - expected[spread]) / np.sqrt(variance[spread])
        assert np.abs(z).max() < 4.5, (counts, expected)

    # -- learning ----------------------------------------------------------------------------
    def test_learns_a_planted_best_arm(self) -> None:
        chosen, best = play(self.make_policy(), lambda x: np.array([0.1, 0.5, 0.9]), 3000)
        assert (chosen[-500:] == best[-500:]).mean() >= 0.85

    def test_context_dependent_best_arm(self) -> None:
        def means(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
            return np.array([0.1, 0.9]) if x[1] else np.array([0.9, 0.1])

        chosen, best = play(self.make_policy(), means, 3000)
        right = (chosen[-500:] == best[-500:]).mean()
        if self.contextual:
            assert right >= 0.85
        else:  # both arms pay 0.5 on average: without the context it is a coin toss
            assert 0.35 <= right <= 0.65

    # -- hyperparameters and config ----------------------------------------------------------
    def test_every_hyperparameter_changes_the_output(
        self, fitted: Policy, stats: np.ndarray[Any, Any], contexts: list[np.ndarray[Any, Any]]
    ) -> None:
        # arms a, b, c; b and c alone; a beside an arm never seen
        tables = [stats[:3], stats[1:3], stats[[0, 3]]]
        for change in self.changed_params:
            other = fitted.clone(**change)
            assert any(
                not np.allclose(
                    fitted.probabilities(table, x, np.random.default_rng(0)),
                    other.probabilities(table, x, np.random.default_rng(0)),
                )
                for table in tables
                for x in contexts
            ), change

    def test_bad_hyperparameters_are_refused(self, stats: np.ndarray[Any, Any]) -> None:
        policy = self.make_policy()
        policy.check()
        for name in policy.get_params():
            for bad in ("many", float("nan"), -1e300):
                broken = policy.clone(**{name: bad})
                with pytest.raises(InvalidInput) as info:
                    broken.check()
                assert info.value.field == f"policy.{name}"
                with pytest.raises(InvalidInput):
                    broken.probabilities(stats, np.ones(N_FEATURES), np.random.default_rng(0))

    def test_config_round_trips_through_json(
        self, fitted: Policy, stats: np.ndarray[Any, Any]
    ) -> None:
        if POLICIES.get(fitted.name) is not type(fitted):
            pytest.skip(f"{type(fitted).__name__} is not registered under {fitted.name!r}")
        config = json.loads(json.dumps(config_of(fitted)))
        assert config["name"] == fitted.name
        back = make_policy(config)
        assert type(back) is type(fitted)
        assert back.get_params() == fitted.get_params()
        x = np.array([1.0, 0.0, 0.2])
        for seed in range(5):
            a = fitted.choose(stats, x, np.random.default_rng(seed))
            assert back.choose(stats, x, np.random.default_rng(seed)) == a
        with pytest.raises(InvalidInput) as info:
            make_policy({**config, "no_such_knob": 1})
        assert info.value.field == "policy.no_such_knob"

    def test_clone_and_repr(self) -> None:
        policy = self.make_policy()
        clone = policy.clone()
        assert clone is not policy
        assert clone.get_params() == policy.get_params()
        assert repr(clone) == repr(policy)
        assert type(policy).__name__ in repr(policy)

    # -- bad inputs --------------------------------------------------------------------------
    def test_bad_inputs_are_refused(self, fitted: Policy, stats: np.ndarray[Any, Any]) -> None:
        x = np.array([1.0, 0.0, 0.5])
        rng = np.random.default_rng(0)
        width = fitted.width(N_FEATURES)
        refused: list[tuple[str, Callable[[], object]]] = [
            ("arms", lambda: fitted.select(x, [], rng)),
            ("arms", lambda: fitted.select(x, ["a", "a"], rng)),
            ("arms", lambda: fitted.select(x, "ab", rng)),
            ("x", lambda: fitted.select(np.ones(N_FEATURES + 1), ["a"], rng)),
            ("x", lambda: fitted.select(np.array([1.0, np.nan, 0.0]), ["a"], rng)),
            ("x", lambda: fitted.select(np.ones((1, N_FEATURES)), ["a"], rng)),
            ("x", lambda: fitted.partial_fit(np.array([1.0, np.inf, 0.0]), "a", 1.0)),
            ("reward", lambda: fitted.partial_fit(x, "a", float("nan"))),
            ("reward", lambda: fitted.partial_fit(x, "a", float("inf"))),
            ("reward", lambda: fitted.reward_delta(x, float("-inf"))),
            ("arm", lambda: fitted.partial_fit(x, 3, 1.0)),  # type: ignore[arg-type]
            ("rewards", lambda: fitted.fit(np.ones((2, N_FEATURES)), ["a", "b"], [1.0])),
            ("contexts", lambda: fitted.fit(np.ones((1, N_FEATURES)), ["a", "b"], [1.0, 0.0])),
            ("stats", lambda: fitted.probabilities(np.zeros((2, width + 1)), x, rng)),
            ("stats", lambda: fitted.probabilities(np.zeros((0, width)), x, rng)),
            ("stats", lambda: fitted.probabilities(np.full((2, width), np.nan), x, rng)),
            ("rng", lambda: fitted.choose(stats, x, 42)),  # type: ignore[arg-type]
        ]
        if self.contextual:
            refused.append(("x", lambda: fitted.probabilities(stats, None, rng)))
        for field, call in refused:
            with pytest.raises(InvalidInput) as info:
                call()
            assert info.value.field == field, (field, info.value.message)
