"""The built-in reward model for DM and DR: a penalized linear model, cross-fitted over folds.

The model predicts the reward of showing action `a` at position `k` in context `x` from

    eta = x . beta + alpha[a] + gamma[k] + b,

with a logistic link when every reward is 0 or 1 (clicks, conversions) and the identity
otherwise (ridge regression). Each context column is divided by its largest absolute value
on the rows the model is fitted on (not centred: sparse columns stay sparse, and a rare
feature is not blown up as a z-score would blow it up); `beta`, `alpha` and `gamma` carry
an L2 penalty, the intercept `b` none. The action and position terms are one-hot codings
written as look-ups, so neither fitting nor predicting the full (rounds x actions x
positions) table ever builds a one-hot matrix, and the solver (Newton steps with conjugate
gradients) calls no matrix library: it stays fast on a busy machine.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from penchant.errors import InvalidInput
from penchant.experiments.ope_checks import FloatArray, IntArray


class _Design:
    """The model's design matrix [x, one-hot action, one-hot position, 1], never built."""

    def __init__(
        self, x: FloatArray, action: IntArray, position: IntArray, n_actions: int, len_list: int
    ) -> None:
        self.x, self.action, self.position = x, action, position
        self.d, self.n_actions, self.len_list = x.shape[1], n_actions, len_list
        self.size = self.d + n_actions + len_list + 1

    def linear(self, theta: FloatArray) -> FloatArray:
        """The design matrix times `theta`, one value per row."""
        d, a = self.d, self.d + self.n_actions
        eta: FloatArray = np.einsum("ij,j->i", self.x, theta[:d])
        eta += theta[d:a][self.action] + theta[a:-1][self.position] + theta[-1]
        return eta

    def transposed(self, g: FloatArray) -> FloatArray:
        """The transposed design matrix times per-row values `g`."""
        return np.concatenate(
            [
                np.einsum("ij,i->j", self.x, g),
                np.bincount(self.action, weights=g, minlength=self.n_actions),
                np.bincount(self.position, weights=g, minlength=self.len_list),
                [g.sum()],
            ]
        )


class LinearRewardModel:
    """Penalized logistic (0/1 rewards) or ridge (other rewards) regression of the reward.

    Args:
        regularization: L2 penalty on every coefficient but the intercept, added to the
            summed loss as `regularization / 2 * ||w||^2`.
        max_iter: iteration limit of the L-BFGS solver.
    """

    def __init__(self, regularization: float = 100.0, max_iter: int = 500) -> None:
        self.regularization = regularization
        self.max_iter = max_iter

    def fit(
        self,
        context: FloatArray,
        action: IntArray,
        position: IntArray,
        reward: FloatArray,
        *,
        n_actions: int,
        len_list: int,
    ) -> Self:
        """Fit the model on logged rounds.

        Args:
            context: shape (n, d) context features (d may be 0).
            action: shape (n,) logged actions in `[0, n_actions)`.
            position: shape (n,) logged positions in `[0, len_list)`.
            reward: shape (n,) observed rewards.
            n_actions: number of actions.
            len_list: number of positions.

        Returns:
            The fitted model.

        Raises:
            InvalidInput: a negative regularization.
        """
        if not self.regularization >= 0.0:
            raise InvalidInput(
                f"regularization must be 0 or more, got {self.regularization}",
                field="regularization",
            )
        self.logistic_ = bool(np.isin(reward, (0.0, 1.0)).all())
        scale = np.abs(context).max(axis=0) if len(context) else np.ones(context.shape[1])
        self.scale_: FloatArray = np.where(scale > 0.0, scale, 1.0)
        x = context / self.scale_
        design = _Design(x, action, position, n_actions, len_list)
        d = x.shape[1]
        penalty = np.full(design.size, self.regularization)
        penalty[-1] = 0.0  # the intercept is free
        logistic = self.logistic_

        def loss(theta: FloatArray) -> tuple[float, FloatArray]:
            eta = design.linear(theta)
            if logistic:
                value = float(np.sum(np.logaddexp(0.0, eta) - reward * eta))
                g = special.expit(eta) - reward
            else:
                g = eta - reward
                value = 0.5 * float(np.dot(g, g))
            value += 0.5 * float(np.dot(penalty, theta * theta))
            return value, design.transposed(g) + penalty * theta

        def hessian_times(theta: FloatArray, vector: FloatArray) -> FloatArray:
            curvature = design.linear(vector)
            if logistic:
                p = special.expit(design.linear(theta))
                curvature = curvature * p * (1.0 - p)
            return design.transposed(curvature) + penalty * vector

        start = np.zeros(design.size)
        mean_reward = float(reward.mean())
        if logistic:
            start[-1] = special.logit(np.clip(mean_reward, 1e-6, 1.0 - 1e-6))
        else:
            start[-1] = mean_reward
        # Newton steps with conjugate gradients: the loss is convex and smooth, and the
        # Hessian-vector products, like the gradient, need no matrix library calls.
        result = optimize.minimize(
            loss,
            start,
            jac=True,
            hessp=hessian_times,
            method="Newton-CG",
            options={"maxiter": self.max_iter},
        )
        theta: FloatArray = np.asarray(result.x, dtype=np.float64)
        self.coef_: FloatArray = theta[:d]
        self.action_coef_: FloatArray = theta[d : d + n_actions]
        self.position_coef_: FloatArray = theta[d + n_actions : -1]
        self.intercept_ = float(theta[-1])
        return self

    def predict(self, context: FloatArray) -> FloatArray:
        """Expected reward of every action at every position, shape (n, n_actions, len_list).

        Args:
            context: shape (n, d) context features, the columns the model was fitted on.

        Returns:
            The predicted rewards.
        """
        base: FloatArray = np.einsum("ij,j->i", context / self.scale_, self.coef_)
        base += self.intercept_
        eta = (
            base[:, None, None]
            + self.action_coef_[None, :, None]
            + self.position_coef_[None, None, :]
        )
        if not self.logistic_:
            return eta
        probabilities: FloatArray = special.expit(eta)
        return probabilities


def cross_fit_rewards(
    context: FloatArray | None,
    action: IntArray,
    position: IntArray,
    reward: FloatArray,
    *,
    n_actions: int,
    len_list: int,
    rng: np.random.Generator,
    folds: int = 5,
    regularization: float = 100.0,
) -> FloatArray:
    """Out-of-fold reward predictions for every round, action and position.

    The rounds are split at random into `folds` parts; each part's predictions come from a
    `LinearRewardModel` fitted on the other parts, so no round's own reward shapes its
    prediction (the bias DR would otherwise inherit from an overfitted model).

    Args:
        context: shape (n, d) context features, or None for a model of action and position
            alone.
        action: shape (n,) logged actions.
        position: shape (n,) logged positions.
        reward: shape (n,) observed rewards.
        n_actions: number of actions.
        len_list: number of positions.
        rng: draws the fold of each round.
        folds: number of folds, at least 2 and at most the number of rounds.
        regularization: the model's L2 penalty.

    Returns:
        Shape (n, n_actions, len_list) predictions.

    Raises:
        InvalidInput: too few rounds for the folds, or a context with another row count.
    """
    n = reward.shape[0]
    if not 2 <= folds <= n:
        raise InvalidInput(
            f"folds must lie in [2, {n}] (the number of rounds), got {folds}", field="folds"
        )
    x: npt.NDArray[np.float64] = np.zeros((n, 0)) if context is None else context
    if x.ndim != 2 or x.shape[0] != n:
        raise InvalidInput(f"context must have shape ({n}, d), got {x.shape}", field="context")
    fold = rng.permutation(n) % folds
    predictions = np.empty((n, n_actions, len_list))
    for k in range(folds):
        train, held = fold != k, fold == k
        model = LinearRewardModel(regularization=regularization).fit(
            x[train],
            action[train],
            position[train],
            reward[train],
            n_actions=n_actions,
            len_list=len_list,
        )
        predictions[held] = model.predict(x[held])
    return predictions
