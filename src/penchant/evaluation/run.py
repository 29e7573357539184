"""Run a model over a split: fit, rank the full catalog for every test user, score the lists."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from penchant.data import Split
from penchant.errors import InvalidInput
from penchant.evaluation.metrics import catalog_metrics, ranking_metrics
from penchant.evaluation.stats import bootstrap_ci
from penchant.models import Recommender

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, eq=False)
class ModelResult:
    """One model's evaluation on one split.

    Attributes:
        label: the name shown in reports (e.g. `ials`, `auto`).
        model: the fitted model.
        users: the test users' codes, in the order of every per-user array.
        recommended: (users x max k) item codes, best first, -1 padding.
        per_user: accuracy metric -> one value per test user (`ndcg@10`, ...).
        catalog: list-level metric -> value (`coverage@10`, `gini@10`, ...).
        fit_seconds: wall time of `fit`.
        rank_seconds: wall time of ranking every test user.
        notes: facts a report shows (tuned parameters, the chosen configuration...).
    """

    label: str
    model: Recommender
    users: np.ndarray[Any, np.dtype[np.int64]]
    recommended: np.ndarray[Any, np.dtype[np.int64]]
    per_user: dict[str, FloatArray]
    catalog: dict[str, float]
    fit_seconds: float
    rank_seconds: float
    notes: dict[str, Any] = field(default_factory=dict)

    def mean(self, metric: str) -> float:
        """The mean over users of an accuracy metric, or a catalog metric's value."""
        if metric in self.per_user:
            return float(self.per_user[metric].mean())
        if metric in self.catalog:
            return self.catalog[metric]
        raise InvalidInput(f"unknown metric {metric!r}")

    def summary(
        self, *, confidence: float = 0.95, n_resamples: int = 1000, rng: int = 0
    ) -> dict[str, dict[str, float]]:
        """Each accuracy metric's mean with a bootstrap confidence interval over users."""
        out: dict[str, dict[str, float]] = {}
        for metric, values in self.per_user.items():
            low, high = bootstrap_ci(
                values, confidence=confidence, n_resamples=n_resamples, rng=rng
            )
            out[metric] = {"mean": float(values.mean()), "ci_low": low, "ci_high": high}
        return out


def evaluate_model(
    model: Recommender,
    split: Split,
    ks: Sequence[int],
    *,
    label: str | None = None,
    fit: bool = True,
    notes: dict[str, Any] | None = None,
) -> ModelResult:
    """Fit a model on the split's training pairs and judge its full rankings on the test pairs.

    Every item of the catalog is ranked for every test user, the user's history (training
    pairs, or fold-in pairs in the strong protocol) is removed, and the top max(ks) are
    scored: no sampled negatives, so the numbers are comparable with any full-ranking study.

    Args:
        model: the model (fitted already when `fit` is False).
        split: the split.
        ks: the cut-offs.
        label: the name in reports (default the model's name).
        fit: fit on `split.train` first.
        notes: facts to carry into the report.

    Returns:
        Per-user and catalog metrics, the lists, and timings.
    """
    if not ks:
        raise InvalidInput("ks: give at least one cut-off")
    started = time.perf_counter()
    if fit:
        model.fit(split.train)
    fit_seconds = time.perf_counter() - started
    test = split.test.matrix
    users = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int64)
    history = split.history.matrix[users]
    # strong generalization: held-out users are unknown to the model and folded in
    codes = np.full(len(users), -1, dtype=np.int64) if split.fold_in is not None else users
    started = time.perf_counter()
    recommended, _ = model.rank(codes, history, max(ks), candidates=split.candidates)
    rank_seconds = time.perf_counter() - started
    per_user = ranking_metrics(recommended, test[users], ks)
    catalog = catalog_metrics(
        recommended,
        ks,
        n_items=split.train.n_items,
        item_counts=split.train.item_counts,
        n_users_train=int(np.count_nonzero(split.train.user_counts)),
    )
    return ModelResult(
        label=label or model.name,
        model=model,
        users=users,
        recommended=recommended,
        per_user=per_user,
        catalog=catalog,
        fit_seconds=fit_seconds,
        rank_seconds=rank_seconds,
        notes=dict(notes or {}),
    )
