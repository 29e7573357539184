"""The stateful convenience of `Policy` and the arm draw."""

from __future__ import annotations

import numpy as np
import pytest

from penchant.bandits import UCB1, BetaThompson, LinearThompson, LinUCB, Selection, base
from penchant.bandits.sampling import draw, uniform_over_best
from penchant.errors import InvalidInput


def test_select_before_any_fit_treats_every_arm_as_new_and_learns_nothing() -> None:
    policy = LinUCB()
    pick = policy.select([1.0, 0.0], ["x", "y"], np.random.default_rng(0))
    assert isinstance(pick, Selection)
    assert pick.arm in {"x", "y"} and pick.propensity == 0.5
    assert not hasattr(policy, "stats_")


def test_partial_fit_fixes_the_number_of_features() -> None:
    policy = LinearThompson().partial_fit([1.0, 2.0], "a", 1.0)
    assert policy.n_features_ == 2
    assert policy.stats_["a"].shape == (6,)
    with pytest.raises(InvalidInput) as info:
        policy.partial_fit([1.0, 2.0, 3.0], "a", 1.0)
    assert info.value.field == "x"
    with pytest.raises(InvalidInput):
        policy.select([1.0], ["a"], np.random.default_rng(0))


def test_fitting_an_empty_log_forgets_everything() -> None:
    policy = UCB1().partial_fit(None, "a", 1.0).fit(np.zeros((0, 2)), [], [])
    assert policy.stats_ == {}
    assert policy.n_features_ == 2


def test_a_reward_before_its_pull_gives_the_same_statistics() -> None:
    policy = LinUCB()
    x = np.array([0.5, -1.0, 2.0])
    in_order = policy.pull_delta(x) + policy.reward_delta(x, 0.75)
    reversed_order = policy.reward_delta(x, 0.75) + policy.pull_delta(x)
    assert np.array_equal(in_order, reversed_order)
    np.testing.assert_array_equal(LinUCB().partial_fit(x, "a", 0.75).stats_["a"], in_order)


def test_fit_sums_in_chunks_the_same_as_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    contexts = rng.normal(size=(300, 3))
    arms = rng.choice(["a", "b", "c", "d"], size=300)  # a numpy array of names is fine
    rewards = rng.random(300)
    whole = LinUCB().fit(contexts, arms, rewards).stats_
    monkeypatch.setattr(base, "_CHUNK_CELLS", 50)  # 4 rows per chunk
    chunked = LinUCB().fit(contexts, arms, rewards).stats_
    assert set(whole) == set(chunked) == {"a", "b", "c", "d"}
    for arm, vec in whole.items():
        np.testing.assert_allclose(chunked[arm], vec, rtol=1e-12)
    mask = arms == "b"
    expected_gram = contexts[mask].T @ contexts[mask]
    np.testing.assert_allclose(whole["b"][:9].reshape(3, 3), expected_gram, rtol=1e-12)
    np.testing.assert_allclose(whole["b"][9:], contexts[mask].T @ rewards[mask], rtol=1e-12)


def test_fit_rejects_arms_that_are_not_strings() -> None:
    with pytest.raises(InvalidInput) as info:
        BetaThompson().fit(None, [1, 2], [0.0, 1.0])  # type: ignore[list-item]
    assert info.value.field == "arms"


def test_draw_follows_the_probabilities_and_never_picks_an_impossible_arm() -> None:
    probs = np.array([0.0, 0.2, 0.0, 0.8, 0.0])
    rng = np.random.default_rng(0)
    picks = np.array([draw(probs, rng) for _ in range(4000)])
    assert set(picks.tolist()) == {1, 3}
    assert (picks == 3).mean() == pytest.approx(0.8, abs=0.03)
    assert draw(np.array([0.3, 0.7, 0.0]), _AlmostOne()) == 1  # top of the range


class _AlmostOne(np.random.Generator):
    def __init__(self) -> None:
        super().__init__(np.random.PCG64(0))

    def random(self, *args: object, **kwargs: object) -> float:  # type: ignore[override]
        return float(np.nextafter(1.0, 0.0))


def test_uniform_over_best_shares_exact_ties() -> None:
    scores = np.array([1.0, np.inf, 3.0, np.inf])
    assert uniform_over_best(scores).tolist() == [0.0, 0.5, 0.0, 0.5]
    assert uniform_over_best(np.array([2.0, 2.0, 2.0])).tolist() == pytest.approx([1 / 3] * 3)
