"""What matrix-factorization models share: dot-product scoring, fold-in, cosine neighbours."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from penchant.errors import InvalidInput
from penchant.models.base import Arrays, CodeArray, Recommender, ScoreArray, unit_cosines

FactorArray = np.ndarray[Any, np.dtype[np.float32]]


class FactorModel(Recommender):
    """A model whose scores are dot products of user and item factors.

    A user the model trained on is scored with their learned factors; any other user (a
    new, anonymous or held-out one) gets factors folded in from the given history by
    `_fold_in`, with the item factors fixed.
    """

    user_factors_: FactorArray
    item_factors_: FactorArray

    @abstractmethod
    def _fold_in(self, history: sp.csr_matrix) -> FactorArray:
        """User factors for rows of history, the item factors held fixed."""

    def user_vectors(self, users: CodeArray, history: sp.csr_matrix) -> FactorArray:
        """The factors that score each user: learned for codes >= 0, folded in for -1.

        Args:
            users: user codes, -1 for a user the model did not train on.
            history: (len(users) x n_items) weights of what each user consumed.
        """
        users = np.asarray(users, dtype=np.int64)
        factors = np.zeros((len(users), self.user_factors_.shape[1]), dtype=np.float32)
        known = users >= 0
        factors[known] = self.user_factors_[users[known]]
        unknown = np.flatnonzero(~known)
        if len(unknown):
            factors[unknown] = self._fold_in(sp.csr_matrix(history[unknown]))
        return factors

    def sample_users(self, n: int = 256, seed: int = 0) -> FactorArray:
        """The learned factors of up to n users drawn with `seed`: typical queries, for
        choosing a retrieval index."""
        count = len(self.user_factors_)
        rows = np.random.default_rng(seed).permutation(count)[: min(n, count)]
        return self.user_factors_[np.sort(rows)]

    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        factors = self.user_vectors(users, history)
        return np.asarray(factors @ self.item_factors_.T, dtype=np.float32)

    def _similar(self, items: CodeArray, one_hot: sp.csr_matrix) -> ScoreArray:
        """Cosine similarity of item factors."""
        return unit_cosines(self._unit_items, items)

    def item_similarity(self, a: CodeArray, b: CodeArray) -> ScoreArray:
        """Cosine similarity of the item factors of `a` to those of `b`."""
        self._check_fitted()
        return unit_cosines(self._unit_items, a, b)

    @property
    def _unit_items(self) -> FactorArray:
        """Item factors scaled to unit length (zero vectors stay zero); cached per array."""
        cached = self.__dict__.get("_unit_cache")
        if cached is not None and cached[0] is self.item_factors_:
            return cast(FactorArray, cached[1])
        norms = np.linalg.norm(self.item_factors_, axis=1)
        norms[norms == 0] = 1.0
        unit = np.asarray(self.item_factors_ / norms[:, None], dtype=np.float32)
        self.__dict__["_unit_cache"] = (self.item_factors_, unit)
        return unit

    def _forget(self, user: int) -> None:
        self.user_factors_[user] = 0.0

    def _arrays(self) -> Arrays:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        self.user_factors_ = np.array(arrays["user_factors"], dtype=np.float32)
        self.item_factors_ = np.array(arrays["item_factors"], dtype=np.float32)


def train_implicit(
    model_class: str, matrix: sp.csr_matrix, **params: Any
) -> tuple[FactorArray, FactorArray]:
    """Train one of `implicit`'s CPU models and return its (user, item) factors.

    Args:
        model_class: `AlternatingLeastSquares` or `BayesianPersonalizedRanking`.
        matrix: users x items training matrix.
        params: the model's own keyword arguments.

    Raises:
        InvalidInput: fewer than one factor or one iteration.
    """
    if params["factors"] < 1 or params["iterations"] < 1:
        raise InvalidInput("factors and epochs must be at least 1")
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    classes = {
        "AlternatingLeastSquares": AlternatingLeastSquares,
        "BayesianPersonalizedRanking": BayesianPersonalizedRanking,
    }
    # implicit's advice: BLAS threads fight its OpenMP threads (it checks when a model is made)
    with threadpool_limits(1, "blas"):
        model = classes[model_class](**params)
        model.fit(matrix, show_progress=False)
    return (
        np.asarray(model.user_factors, dtype=np.float32),
        np.asarray(model.item_factors, dtype=np.float32),
    )


def weighted_least_squares(
    history: sp.csr_matrix, item_factors: FactorArray, regularization: float, alpha: float
) -> FactorArray:
    """The implicit-feedback ALS user step (Hu, Koren and Volinsky 2008) for rows of history.

    With confidence c_i = alpha * r_i for the user's items (and preference 1), solves
    `(Y'Y + sum_i (c_i - 1) y_i y_i' + regularization I) x = sum_i c_i y_i`, the same
    objective `implicit` optimizes, so a folded-in user matches a trained one.
    """
    y = item_factors.astype(np.float64)
    f = y.shape[1]
    base = y.T @ y + regularization * np.eye(f)
    out = np.zeros((history.shape[0], f), dtype=np.float32)
    for row in range(history.shape[0]):
        lo, hi = history.indptr[row], history.indptr[row + 1]
        if lo == hi:
            continue
        yi = y[history.indices[lo:hi]]
        conf = alpha * history.data[lo:hi].astype(np.float64)
        a = base + (yi.T * (conf - 1.0)) @ yi
        b = (yi * conf[:, None]).sum(axis=0)
        out[row] = np.linalg.solve(a, b)
    return out
