"""Implicit-feedback alternating least squares, trained by the `implicit` library."""

from __future__ import annotations

import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models.factors import (
    FactorArray,
    FactorModel,
    train_implicit,
    weighted_least_squares,
)


class ImplicitALS(FactorModel):
    """Weighted matrix factorization for implicit feedback (Hu, Koren and Volinsky 2008).

    Training is `implicit`'s conjugate-gradient ALS; the interaction weights are the
    preference strengths and confidence is `alpha * weight`.

    Args:
        factors: latent dimensions.
        regularization: L2 penalty on the factors (not scaled by activity, as in
            `implicit`; 10 suits datasets of ML-100K's size and shape far better than
            implicit's 0.01, and `auto` tunes it).
        alpha: confidence scale of the weights.
        epochs: ALS sweeps.
        rng: seed of the factor initialization.
        threads: training threads (0: all cores).
    """

    name = "ials"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 10.0,
        alpha: float = 1.0,
        epochs: int = 15,
        rng: int | None = 0,
        threads: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.epochs = epochs
        self.rng = rng
        self.threads = threads

    def _fit(self, data: Dataset) -> None:
        if self.regularization < 0 or self.alpha <= 0:
            raise InvalidInput("regularization must be >= 0 and alpha above 0")
        self.user_factors_, self.item_factors_ = train_implicit(
            "AlternatingLeastSquares",
            data.matrix,
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.epochs,
            random_state=self.rng,
            num_threads=self.threads,
        )

    def _fold_in(self, history: sp.csr_matrix) -> FactorArray:
        return weighted_least_squares(history, self.item_factors_, self.regularization, self.alpha)
