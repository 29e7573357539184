"""A person's taste over item categories, added to each item's position-corrected appeal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from penchant.data import Dataset
from penchant.data.impressions import ImpressionLog
from penchant.errors import InvalidInput
from penchant.models.base import Arrays, CodeArray, Recommender, ScoreArray, binarized

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class CategoryTaste(Recommender):
    """score(person, item) = appeal(item) + strength * sum over the item's categories c of
    w_c (s_c - p_c), where the item's categories share one unit equally (w), s is the
    person's share of consumed items in each category, smoothed towards the population's
    share p with `prior` pseudo-items, and p is that population share.

    The taste part is computed from the history it is given, so a person's list follows
    what they took a moment ago without retraining. An item's appeal is, where the data
    has logged impressions (`Dataset.impressions`), its effect in a logistic model of
    click ~ item + position fitted on every logged impression, with an L2 penalty of
    `regularization` on the item effects (the positions are not penalized): how readily
    people take the item once shown, with the position's share of that removed and items
    shown rarely pulled towards the average. Without a log, the appeal is
    log(1 + the people who took the item). Without categories (`Dataset.item_categories`)
    the taste part is 0 and every person gets the appeal ranking.

    Args:
        strength: weight of the taste part against the appeal (logit scale).
        prior: pseudo-items at the population's shares added to each person's history.
        regularization: L2 penalty on the item effects of the click model.
        positions: positions modelled one by one; lower ones share the last effect.
    """

    name = "taste"
    popular_for_cold = False  # an empty history gets the appeal ranking, which is its answer

    def __init__(
        self,
        strength: float = 5.0,
        prior: float = 5.0,
        regularization: float = 1.0,
        positions: int = 10,
    ) -> None:
        self.strength = strength
        self.prior = prior
        self.regularization = regularization
        self.positions = positions

    def wants_text(self) -> bool:
        """Whether training reads the catalog (its categories, which come with the texts)."""
        return True

    def wants_impressions(self) -> bool:
        """Whether fitting uses `Dataset.impressions` when there are some (it does)."""
        return True

    @property
    def personalizes(self) -> bool:
        """Whether there is a taste part: item categories to learn it over, and strength."""
        return self.shares_.shape[1] > 0 and self.strength > 0

    def _check(self) -> None:
        if not self.strength >= 0:
            raise InvalidInput("strength: must be 0 or more", field="strength")
        if not self.prior > 0:
            raise InvalidInput("prior: must be above 0", field="prior")
        if not self.regularization > 0:
            raise InvalidInput("regularization: must be above 0", field="regularization")
        if not (isinstance(self.positions, int) and self.positions >= 1):
            raise InvalidInput("positions: must be a whole number of 1 or more", field="positions")

    def _fit(self, data: Dataset) -> None:
        self._check()
        log = data.impressions
        if log is not None and len(log):
            items, _ = click_effects(log, data.n_items, self.regularization, self.positions)
            self.appeal_ = items.astype(np.float32)
        else:
            self.appeal_ = np.log1p(data.item_counts).astype(np.float32)
        shares = _category_shares(data.item_categories, data.n_items)
        self.shares_ = shares
        taken = binarized(data.matrix) @ shares
        total = float(taken.sum())
        width = shares.shape[1]
        self.population_ = (
            np.asarray(taken.sum(axis=0), dtype=np.float64).ravel() / total
            if total > 0
            else np.full(width, 1.0 / max(width, 1))
        )

    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        out = np.broadcast_to(self.appeal_, (len(users), len(self.appeal_))).astype(np.float32)
        if self.shares_.shape[1] == 0 or self.strength == 0:
            return out
        counts = np.asarray((binarized(history) @ self.shares_).todense(), dtype=np.float64)
        p = self.population_
        smoothed = (counts + self.prior * p) / (counts.sum(axis=1, keepdims=True) + self.prior)
        taste = self.strength * (smoothed - p)  # (users x categories)
        out += np.asarray((self.shares_ @ taste.T).T, dtype=np.float32)
        return out

    def _arrays(self) -> Arrays:
        s = self.shares_
        return {
            "appeal": self.appeal_,
            "population": self.population_,
            "share_indptr": s.indptr,
            "share_indices": s.indices,
            "share_data": s.data,
            "share_width": np.array([s.shape[1]]),
        }

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        self.appeal_ = arrays["appeal"]
        self.population_ = arrays["population"]
        shape = (len(self.appeal_), int(arrays["share_width"][0]))
        self.shares_ = sp.csr_matrix(
            (arrays["share_data"], arrays["share_indices"], arrays["share_indptr"]), shape=shape
        )


def _category_shares(categories: sp.csr_matrix | None, n_items: int) -> sp.csr_matrix:
    """(items x categories): each item's categories sharing one unit equally."""
    if categories is None:
        return sp.csr_matrix((n_items, 0), dtype=np.float64)
    c = sp.csr_matrix(categories, dtype=np.float64, copy=True)
    c.data[:] = 1.0
    per_item = np.diff(c.indptr)
    c.data /= np.repeat(np.maximum(per_item, 1), per_item)
    return c


def click_effects(
    log: ImpressionLog, n_items: int, regularization: float, positions: int
) -> tuple[FloatArray, FloatArray]:
    """The effects of the logistic model click ~ item + position over logged impressions.

    The model is logit P(click) = a_item + b_position, fitted by L-BFGS on the penalized
    log-likelihood with `regularization` / 2 * sum(a^2); positions at or beyond
    `positions - 1` share one effect, and a position that was not logged has its own.

    Returns:
        a per item code (0 for items never shown), and b per position (`positions` of them,
        then the effect of an unlogged position).
    """
    items = log.items
    pos = np.where(log.positions < 0, positions, np.minimum(log.positions, positions - 1))
    y = log.labels.astype(np.float64)
    n_pos = positions + 1

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        a, b = theta[:n_items], theta[n_items:]
        z = a[items] + b[pos]
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
        loss = float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * regularization * a @ a)
        residual = p - y
        grad_a = np.bincount(items, residual, minlength=n_items) + regularization * a
        grad_b = np.bincount(pos, residual, minlength=n_pos)
        return loss, np.concatenate([grad_a, grad_b])

    rate = (y.sum() + 0.5) / (len(y) + 1.0)
    start = np.concatenate([np.zeros(n_items), np.full(n_pos, np.log(rate / (1 - rate)))])
    fit = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "gtol": 1e-9, "ftol": 1e-14},
    )
    return np.asarray(fit.x[:n_items], np.float64), np.asarray(fit.x[n_items:], np.float64)
