"""Bayesian personalized ranking (Rendle et al. 2009), trained by the `implicit` library."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models.base import binarized
from penchant.models.factors import (
    FactorArray,
    FactorModel,
    train_implicit,
    weighted_least_squares,
)


class BPR(FactorModel):
    """Pairwise ranking factorization: a user's items should outscore sampled other items.

    Trained by `implicit`'s SGD, which learns an item bias as an extra factor (the user
    side of that factor is fixed at 1). Weights are ignored: any interaction is a positive.

    A user the model did not train on is folded in by least squares (1 for their items, 0
    for the rest) against the item factors, the bias factor fixed at 1: an approximation,
    since BPR itself has no closed-form user step.

    Args:
        factors: latent dimensions (plus the bias factor).
        learning_rate: SGD step size.
        regularization: L2 penalty.
        epochs: passes over the interactions.
        rng: seed of the initialization and the sampling.
        threads: training threads (0: all cores).
    """

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        epochs: int = 100,
        rng: int | None = 0,
        threads: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.epochs = epochs
        self.rng = rng
        self.threads = threads

    def _fit(self, data: Dataset) -> None:
        if self.learning_rate <= 0 or self.regularization < 0:
            raise InvalidInput("learning_rate must be above 0 and regularization >= 0")
        binary = binarized(data.matrix)
        self.user_factors_, self.item_factors_ = train_implicit(
            "BayesianPersonalizedRanking",
            binary,
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.epochs,
            random_state=self.rng,
            num_threads=self.threads,
        )

    def _fold_in(self, history: sp.csr_matrix) -> FactorArray:
        binary = binarized(history)
        # least squares of "1 for the user's items, 0 elsewhere" on the latent item factors
        latent = self.item_factors_[:, :-1]
        folded = weighted_least_squares(binary, latent, max(self.regularization, 1e-3), 1.0)
        return np.hstack([folded, np.ones((len(folded), 1), dtype=np.float32)])
