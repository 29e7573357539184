"""The built-in reward model: against scikit-learn and closed-form ridge, and cross-fitting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from penchant.errors import InvalidInput
from penchant.experiments import LinearRewardModel, cross_fit_rewards

N_ACTIONS, LEN_LIST = 5, 3


def _data(n: int, seed: int, binary: bool) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) * np.array([1.0, 3.0, 0.2, 10.0])
    action = rng.integers(0, N_ACTIONS, size=n)
    position = rng.integers(0, LEN_LIST, size=n)
    eta = x @ np.array([0.8, -0.2, 1.0, 0.05]) + 0.4 * action - 0.5 * position - 1.0
    reward = (rng.random(n) < expit(eta)).astype(float) if binary else eta + rng.normal(size=n)
    return x, action, position, reward


def _design(
    x: np.ndarray, action: np.ndarray, position: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """The one-hot design, context divided by the training rows' largest absolute values."""
    return np.hstack([x / scale, np.eye(N_ACTIONS)[action], np.eye(LEN_LIST)[position]])


def test_logistic_fit_matches_scikit_learn_with_the_same_penalty() -> None:
    x, action, position, reward = _data(3000, seed=1, binary=True)
    model = LinearRewardModel(regularization=4.0).fit(
        x, action, position, reward, n_actions=N_ACTIONS, len_list=LEN_LIST
    )
    # scikit-learn minimizes ||w||^2 / 2 + C * sum(loss): C = 1 / regularization.
    reference = LogisticRegression(C=1 / 4.0, tol=1e-10, max_iter=10_000)
    scale = np.abs(x).max(axis=0)
    reference.fit(_design(x, action, position, scale), reward)
    ours = model.predict(x[:50])
    for k in range(LEN_LIST):
        for a in range(N_ACTIONS):
            rows = _design(x[:50], np.full(50, a), np.full(50, k), scale)
            expected = reference.predict_proba(rows)[:, 1]
            np.testing.assert_allclose(ours[:, a, k], expected, rtol=1e-4, atol=1e-6)


def test_real_valued_rewards_fit_the_closed_form_ridge_solution() -> None:
    x, action, position, reward = _data(2000, seed=2, binary=False)
    model = LinearRewardModel(regularization=3.0).fit(
        x, action, position, reward, n_actions=N_ACTIONS, len_list=LEN_LIST
    )
    scale = np.abs(x).max(axis=0)
    design = np.hstack([_design(x, action, position, scale), np.ones((2000, 1))])
    penalty = np.diag([3.0] * (design.shape[1] - 1) + [0.0])  # the intercept is free
    theta = np.linalg.solve(design.T @ design + penalty, design.T @ reward)
    rows = np.hstack([_design(x[:20], np.full(20, 2), np.full(20, 1), scale), np.ones((20, 1))])
    np.testing.assert_allclose(model.predict(x[:20])[:, 2, 1], rows @ theta, rtol=1e-5, atol=1e-6)


def test_planted_action_and_position_effects_are_recovered() -> None:
    x, action, position, reward = _data(4000, seed=3, binary=True)
    q = (
        LinearRewardModel()
        .fit(x, action, position, reward, n_actions=N_ACTIONS, len_list=LEN_LIST)
        .predict(x)
    )
    by_action = q.mean(axis=(0, 2))
    by_position = q.mean(axis=(0, 1))
    assert list(np.argsort(by_action)) == list(range(N_ACTIONS))  # +0.4 per action
    assert by_position[0] > by_position[1] > by_position[2]  # -0.5 per position


def test_a_rounds_own_reward_never_shapes_its_cross_fitted_prediction() -> None:
    x, action, position, reward = _data(600, seed=4, binary=True)
    before = cross_fit_rewards(
        x, action, position, reward,
        n_actions=N_ACTIONS, len_list=LEN_LIST, rng=np.random.default_rng(0), folds=3,
    )  # fmt: skip
    flipped = reward.copy()
    flipped[17] = 1.0 - flipped[17]
    after = cross_fit_rewards(
        x, action, position, flipped,
        n_actions=N_ACTIONS, len_list=LEN_LIST, rng=np.random.default_rng(0), folds=3,
    )  # fmt: skip
    np.testing.assert_array_equal(before[17], after[17])
    assert not np.array_equal(before, after)  # the other folds did learn from it
    assert before.shape == (600, N_ACTIONS, LEN_LIST)
    assert ((before > 0) & (before < 1)).all()


def test_cross_fitting_without_context_models_action_and_position_alone() -> None:
    _, action, position, reward = _data(900, seed=5, binary=True)
    q = cross_fit_rewards(
        None, action, position, reward,
        n_actions=N_ACTIONS, len_list=LEN_LIST, rng=np.random.default_rng(1),
    )  # fmt: skip
    assert q.shape == (900, N_ACTIONS, LEN_LIST)
    # Without context, rounds in one fold share one prediction table.
    assert len({q[i].tobytes() for i in range(900)}) <= 5


@pytest.mark.parametrize("folds", [1, 901])
def test_folds_outside_the_rounds_are_invalid(folds: int) -> None:
    _, action, position, reward = _data(900, seed=5, binary=True)
    with pytest.raises(InvalidInput) as caught:
        cross_fit_rewards(
            None, action, position, reward,
            n_actions=N_ACTIONS, len_list=LEN_LIST, rng=np.random.default_rng(1), folds=folds,
        )  # fmt: skip
    assert caught.value.field == "folds"


def test_negative_regularization_is_invalid() -> None:
    x, action, position, reward = _data(100, seed=6, binary=True)
    with pytest.raises(InvalidInput) as caught:
        LinearRewardModel(regularization=-1.0).fit(
            x, action, position, reward, n_actions=N_ACTIONS, len_list=LEN_LIST
        )
    assert caught.value.field == "regularization"
