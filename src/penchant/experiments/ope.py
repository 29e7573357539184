"""Off-policy estimators (IPS, SNIPS, DM, DR) with confidence intervals, on obp's arrays.

Every estimator takes the logged rounds as the Open Bandit Pipeline lays them out:
`reward (n,)`, `action (n,)`, `position (n,)` (0-based), `pscore (n,)` (the logging
policy's propensity of the logged action at its position), `action_dist (n, n_actions,
len_list)` (the evaluated policy's probabilities) and, for DM and DR, `estimated_rewards`
of the same shape. With `w = action_dist[i, action_i, position_i] / pscore_i`:

- IPS  = mean(w r)
- SNIPS = sum(w r) / sum(w)
- DM   = mean over rounds of sum_a action_dist[i, a, k_i] q[i, a, k_i]
- DR   = DM + mean(w (r - q[i, action_i, k_i]))

The point estimates equal obp's `estimate_policy_value`. Intervals are analytic by default
(normal approximation over the per-round terms; the delta method for the SNIPS ratio) or a
percentile bootstrap over rounds when `n_bootstrap > 0`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from penchant.errors import InvalidInput
from penchant.experiments import ope_checks as checks
from penchant.experiments.intervals import Estimate, mean_estimate, ratio_estimate
from penchant.experiments.ope_checks import FloatArray, IntArray
from penchant.experiments.reward_model import cross_fit_rewards

ESTIMATORS = ("ips", "snips", "dm", "dr")


class _Logged(NamedTuple):
    reward: FloatArray
    action: IntArray
    position: IntArray
    pscore: FloatArray
    action_dist: FloatArray


def _positions(position: npt.ArrayLike | None, n: int, len_list: int) -> IntArray:
    if position is None:
        return np.zeros(n, dtype=np.int64)
    what = f"len_list = {len_list}, from action_dist"
    return checks.indices(position, "position", n=n, upper=len_list, what=what)


def _logged(
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    position: npt.ArrayLike | None,
    pscore: npt.ArrayLike,
    action_dist: npt.ArrayLike,
) -> _Logged:
    r = checks.rounds(reward, "reward")
    n = r.shape[0]
    dist = checks.distribution(action_dist, n, "reward")
    n_actions, len_list = dist.shape[1], dist.shape[2]
    what = f"n_actions = {n_actions}, from action_dist"
    a = checks.indices(action, "action", n=n, upper=n_actions, what=what)
    k = _positions(position, n, len_list)
    return _Logged(r, a, k, checks.propensities(pscore, n, "reward"), dist)


def _weights(logged: _Logged, lambda_: float | None) -> FloatArray:
    n = logged.reward.shape[0]
    target = logged.action_dist[np.arange(n), logged.action, logged.position]
    w: FloatArray = target / logged.pscore
    return w if lambda_ is None else np.minimum(w, lambda_)


def _policy_means(action_dist: FloatArray, q: FloatArray, position: IntArray) -> FloatArray:
    rows = np.arange(position.shape[0])
    means: FloatArray = (action_dist[rows, :, position] * q[rows, :, position]).sum(axis=1)
    return means


def ips(
    *,
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    pscore: npt.ArrayLike,
    action_dist: npt.ArrayLike,
    position: npt.ArrayLike | None = None,
    lambda_: float | None = None,
    alpha: float = 0.05,
    n_bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """Inverse propensity scoring: the mean of importance-weighted rewards.

    Unbiased when the propensities are right and every action the evaluated policy takes
    had a positive logging probability; its variance grows with the weights.

    Args:
        reward: shape (n,) observed rewards.
        action: shape (n,) logged actions in `[0, n_actions)`.
        pscore: shape (n,) logging propensities of the logged actions, in (0, 1].
        action_dist: shape (n, n_actions, len_list) probabilities of the evaluated policy.
        position: shape (n,) 0-based positions (default: all 0).
        lambda_: cap on the importance weights, `w = min(w, lambda_)` (obp's `lambda_`);
            None caps nothing. A cap trades bias for variance.
        alpha: one minus the interval's coverage.
        n_bootstrap: resamples of a percentile-bootstrap interval; 0 uses the normal
            approximation.
        rng: the generator of the bootstrap resamples (needed when `n_bootstrap > 0`).

    Returns:
        The estimate and its interval.

    Raises:
        InvalidInput: arrays that disagree in shape, a propensity outside (0, 1], an action
            or position out of range, probabilities that are negative or do not sum to 1,
            no rounds, or a bad option.
    """
    checks.options(alpha, n_bootstrap, lambda_)
    logged = _logged(reward, action, position, pscore, action_dist)
    return mean_estimate(_weights(logged, lambda_) * logged.reward, alpha, n_bootstrap, rng)


def snips(
    *,
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    pscore: npt.ArrayLike,
    action_dist: npt.ArrayLike,
    position: npt.ArrayLike | None = None,
    alpha: float = 0.05,
    n_bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """Self-normalized IPS: importance-weighted rewards divided by the sum of the weights.

    Slightly biased but consistent, always inside the range of the rewards, and steadier
    than IPS when the weights are large; NaN when every weight is 0. The arguments and
    errors are those of `ips` (without a weight cap, as in obp: normalizing already bounds
    the estimate).

    Returns:
        The estimate and its interval (delta method, or bootstrap).
    """
    checks.options(alpha, n_bootstrap)
    return _snips(_logged(reward, action, position, pscore, action_dist), alpha, n_bootstrap, rng)


def _snips(
    logged: _Logged, alpha: float, n_bootstrap: int, rng: np.random.Generator | None
) -> Estimate:
    w = _weights(logged, None)
    return ratio_estimate(w * logged.reward, w, alpha, n_bootstrap, rng)


def dm(
    *,
    action_dist: npt.ArrayLike,
    estimated_rewards: npt.ArrayLike,
    position: npt.ArrayLike | None = None,
    alpha: float = 0.05,
    n_bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """Direct method: the reward model's expected reward under the evaluated policy.

    Needs no propensities and has low variance, but is only as good as the reward model:
    its interval reflects the spread over contexts and takes the model as exact.

    Args:
        action_dist: shape (n, n_actions, len_list) probabilities of the evaluated policy.
        estimated_rewards: the same shape, a reward model's predictions.
        position: shape (n,) 0-based positions (default: all 0).
        alpha: one minus the interval's coverage.
        n_bootstrap: resamples of a percentile-bootstrap interval; 0 uses the normal
            approximation.
        rng: the generator of the bootstrap resamples (needed when `n_bootstrap > 0`).

    Returns:
        The estimate and its interval.

    Raises:
        InvalidInput: shapes that disagree, a position out of range, a bad distribution,
            no rounds, or a bad option.
    """
    checks.options(alpha, n_bootstrap)
    dist = checks.distribution(action_dist, None, "action_dist")
    q = checks.reward_table(estimated_rewards, dist.shape)
    k = _positions(position, dist.shape[0], dist.shape[2])
    return mean_estimate(_policy_means(dist, q, k), alpha, n_bootstrap, rng)


def dr(
    *,
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    pscore: npt.ArrayLike,
    action_dist: npt.ArrayLike,
    estimated_rewards: npt.ArrayLike,
    position: npt.ArrayLike | None = None,
    lambda_: float | None = None,
    alpha: float = 0.05,
    n_bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """Doubly robust: DM plus an importance-weighted correction of the model's errors.

    Unbiased when the propensities are right, whatever the reward model; with a good model
    its variance is well below that of IPS. The arguments and errors are those of `ips`,
    plus `estimated_rewards` of shape (n, n_actions, len_list).

    Returns:
        The estimate and its interval.
    """
    checks.options(alpha, n_bootstrap, lambda_)
    logged = _logged(reward, action, position, pscore, action_dist)
    q = checks.reward_table(estimated_rewards, logged.action_dist.shape)
    terms = _dr_terms(logged, q, _weights(logged, lambda_))
    return mean_estimate(terms, alpha, n_bootstrap, rng)


def _dr_terms(logged: _Logged, q: FloatArray, w: FloatArray) -> FloatArray:
    rows = np.arange(logged.reward.shape[0])
    factual = q[rows, logged.action, logged.position]
    return _policy_means(logged.action_dist, q, logged.position) + w * (logged.reward - factual)


def estimate_all(
    *,
    reward: npt.ArrayLike,
    action: npt.ArrayLike,
    pscore: npt.ArrayLike,
    action_dist: npt.ArrayLike,
    position: npt.ArrayLike | None = None,
    estimated_rewards: npt.ArrayLike | None = None,
    context: npt.ArrayLike | None = None,
    lambda_: float | None = None,
    alpha: float = 0.05,
    n_bootstrap: int = 0,
    folds: int = 5,
    regularization: float = 100.0,
    rng: np.random.Generator | None = None,
) -> dict[str, Estimate]:
    """IPS, SNIPS, DM and DR of one evaluated policy on one log.

    Without `estimated_rewards`, DM and DR use the built-in `LinearRewardModel` on
    `context`, cross-fitted over `folds` folds (see `cross_fit_rewards`).

    Args:
        reward: shape (n,) observed rewards.
        action: shape (n,) logged actions.
        pscore: shape (n,) logging propensities.
        action_dist: shape (n, n_actions, len_list) probabilities of the evaluated policy.
        position: shape (n,) 0-based positions (default: all 0).
        estimated_rewards: shape (n, n_actions, len_list) predictions of a reward model.
        context: shape (n, d) features of the built-in reward model (default: none).
        lambda_: cap on the importance weights of IPS and DR.
        alpha: one minus the intervals' coverage.
        n_bootstrap: resamples of percentile-bootstrap intervals; 0 for analytic ones.
        folds: folds of the built-in model's cross-fitting.
        regularization: L2 penalty of the built-in model.
        rng: draws the folds and the bootstrap resamples (needed for either).

    Returns:
        `{"ips": ..., "snips": ..., "dm": ..., "dr": ...}`.

    Raises:
        InvalidInput: any input `ips`, `dm` or `dr` rejects, a context with another row
            count, bad folds, or no rng where one is needed.
    """
    checks.options(alpha, n_bootstrap, lambda_)
    logged = _logged(reward, action, position, pscore, action_dist)
    if estimated_rewards is None:
        if rng is None:
            raise InvalidInput(
                "the built-in reward model needs rng, a numpy Generator, to draw its folds",
                field="rng",
            )
        x = None if context is None else checks.floats(context, "context", ndim=2)
        _, n_actions, len_list = logged.action_dist.shape
        estimated_rewards = cross_fit_rewards(
            x,
            logged.action,
            logged.position,
            logged.reward,
            n_actions=n_actions,
            len_list=len_list,
            rng=rng,
            folds=folds,
            regularization=regularization,
        )
    q = checks.reward_table(estimated_rewards, logged.action_dist.shape)
    w = _weights(logged, lambda_)
    return {
        "ips": mean_estimate(w * logged.reward, alpha, n_bootstrap, rng),
        "snips": _snips(logged, alpha, n_bootstrap, rng),
        "dm": mean_estimate(
            _policy_means(logged.action_dist, q, logged.position), alpha, n_bootstrap, rng
        ),
        "dr": mean_estimate(_dr_terms(logged, q, w), alpha, n_bootstrap, rng),
    }
