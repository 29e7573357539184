"""Popularity and time-decayed trending: the baseline and the cold-start fallback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models.base import Arrays, CodeArray, Recommender, ScoreArray

_MICROS_PER_DAY = 86_400 * 1_000_000


class Popular(Recommender):
    """Ranks items by how many users took them, optionally weighting recent users more.

    Args:
        half_life_days: None ranks by all-time distinct users; a number makes it trending:
            each (user, item) pair counts 2^(-age / half_life_days), where age is the time
            from the pair's latest event to the newest event in the training data.
    """

    name = "popular"
    popular_for_cold = False  # its own (possibly trending) ranking is the cold-start answer

    def __init__(self, half_life_days: float | None = None) -> None:
        self.half_life_days = half_life_days

    @property
    def personalizes(self) -> bool:
        """Popularity is the same for everyone."""
        return False

    def _fit(self, data: Dataset) -> None:
        if self.half_life_days is None:
            counts: np.ndarray[Any, Any] = data.item_counts.astype(np.float64)
        else:
            if not self.half_life_days > 0:
                raise InvalidInput("half_life_days: must be above 0")
            age = (int(data.last_ts.max()) - data.last_ts) / _MICROS_PER_DAY
            decayed = np.exp2(-age / self.half_life_days)
            counts = np.bincount(data.items, weights=decayed, minlength=data.n_items)
        self.item_scores_ = counts.astype(np.float32)

    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        return np.broadcast_to(self.item_scores_, (len(users), len(self.item_scores_))).copy()

    def _similar(self, items: CodeArray, one_hot: sp.csr_matrix) -> ScoreArray:
        return self._score(items, one_hot)

    def _arrays(self) -> Arrays:
        return {"item_scores": self.item_scores_}

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        self.item_scores_ = arrays["item_scores"]
