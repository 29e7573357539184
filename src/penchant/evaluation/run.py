"""Run a model over a split: fit, rank the full catalog for every test user, score the lists."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.data import Split
from penchant.errors import InvalidInput
from penchant.evaluation.metrics import catalog_metrics, ranking_metrics
from penchant.evaluation.stats import bootstrap_ci
from penchant.models import Recommender

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
#: Candidate scores ranked per batch of users in `_rank_candidates` (32 MiB of float32).
_TIE_CELLS = 1 << 23


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
    seed: int = 0,
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
        seed: orders equal scores among a protocol's candidates (see `_rank_candidates`).

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
    if split.candidates is None:
        recommended, _ = model.rank(codes, history, max(ks))
    else:
        recommended = _rank_candidates(model, codes, history, split.candidates, max(ks), seed)
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


def _rank_candidates(
    model: Recommender,
    users: np.ndarray[Any, np.dtype[np.int64]],
    history: sp.csr_matrix,
    candidates: np.ndarray[Any, np.dtype[np.int64]],
    k: int,
    seed: int,
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The top k of the candidates, with equal scores in a random order drawn from `seed`.

    Models rank equal scores by item code. A model that knows nothing of the candidates
    (collaborative filtering on cold items) scores them all alike, and the code order, which
    follows the data file, would then decide its list: a popular-first file would hand it
    the popular cold items for free. Shuffling ties leaves such a model at chance level.
    """
    depth = len(candidates)
    gen = np.random.default_rng(seed)
    out = np.full((len(users), k), -1, dtype=np.int64)
    step = max(1, _TIE_CELLS // max(depth, 1))
    for start in range(0, len(users), step):
        end = min(start + step, len(users))
        codes, scores = model.rank(
            users[start:end], history[start:end], depth, candidates=candidates
        )
        ties = gen.random(codes.size).reshape(codes.shape)
        order = np.lexsort((ties, -scores), axis=1)[:, :k]
        kept = np.take_along_axis(codes, order, axis=1)
        out[start:end, : kept.shape[1]] = kept
    return out
