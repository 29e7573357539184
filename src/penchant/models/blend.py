"""A weighted blend of several models' standardized scores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models.base import CodeArray, Recommender, ScoreArray


class Blend(Recommender):
    """Combines models: each one's scores are standardized per user, then weighted and summed.

    Standardizing (z-scores over the catalog, per user) puts models with very different
    score scales (similarity sums, dot products, counts) on one footing before weighting.

    Args:
        models: the members; `fit` fits each of them on the same data.
        weights: one per member (default equal); only their ratios matter.
    """

    name = "blend"

    def __init__(
        self, models: Sequence[Recommender], weights: Sequence[float] | None = None
    ) -> None:
        self.models = models
        self.weights = weights

    def _weights(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        if not self.models:
            raise InvalidInput("blend: needs at least one model")
        w = np.ones(len(self.models)) if self.weights is None else np.asarray(self.weights, float)
        if len(w) != len(self.models) or not np.all(np.isfinite(w)) or (w < 0).any():
            raise InvalidInput("blend: one weight >= 0 per model")
        if w.sum() == 0:
            raise InvalidInput("blend: at least one weight must be above 0")
        return w

    def _fit(self, data: Dataset) -> None:
        self._weights()
        for model in self.models:
            model.fit(data)

    def reads_text(self) -> bool:
        """Whether a member needs the items' texts."""
        return any(model.reads_text() for model in self.models)

    def wants_text(self) -> bool:
        """Whether a member uses the items' texts."""
        return any(model.wants_text() for model in self.models)

    def with_fitted(self, data: Dataset) -> Blend:
        """Adopt members that are already fitted on `data` (e.g. to tune weights quickly)."""
        self._weights()
        for model in self.models:
            if not model.fitted or len(model.item_ids_) != data.n_items:
                raise InvalidInput("blend: every member must be fitted on the same data")
        self._adopt(data)
        return self

    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        total = np.zeros((len(users), len(self.item_ids_)), dtype=np.float32)
        for weight, model in zip(self._weights(), self.models, strict=True):
            if weight == 0:
                continue
            s = model.scores(users, history)
            mean = s.mean(axis=1, keepdims=True)
            std = s.std(axis=1, keepdims=True)
            std[std == 0] = 1.0
            total += np.float32(weight) * ((s - mean) / std)
        return total

    def _forget(self, user: int) -> None:
        for model in self.models:
            model._forget(user)
            hist = model.history_.tolil()
            hist.rows[user] = []
            hist.data[user] = []
            model.history_ = hist.tocsr()

    def get_params(self) -> dict[str, Any]:
        """`models` and `weights` (the members keep their own parameters)."""
        return {"models": list(self.models), "weights": self.weights}

    def clone(self, **changes: Any) -> Blend:
        """An unfitted copy whose members are unfitted copies."""
        params: dict[str, Any] = {"models": [m.clone() for m in self.models]}
        params["weights"] = None if self.weights is None else list(self.weights)
        params.update(changes)
        return Blend(**params)

    def save(self, path: Path) -> None:
        """The blend's own folder, with each member saved under `members/<i>/`."""
        for index, model in enumerate(self.models):
            model.save(path / "members" / str(index))
        super().save(path)

    def _saved_params(self) -> dict[str, Any]:
        return {"weights": None if self.weights is None else [float(w) for w in self.weights]}

    def _meta(self) -> dict[str, Any]:
        return {"members": [model.name for model in self.models]}
