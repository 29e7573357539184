"""The features of a (person, candidate item) pair that the learning-to-rank stage reads.

One function, `candidate_features`, computes them for offline training, offline evaluation
and the serving pipeline alike, so what the ranker learned from and what it is given at
request time cannot drift apart. Everything it needs comes in as arrays: the candidates'
scores from each source, the item statistics of the training data (`ItemStats`), the
person's history, and the request's context.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
CodeArray = np.ndarray[Any, np.dtype[np.int64]]

_MICROS_PER_DAY = 86_400 * 1_000_000
#: What "recently popular" counts: interactions in the last this many days of the data.
RECENT_DAYS = 30.0
#: Devices and surfaces the context features know (anything else is "other"; none is NaN).
DEVICES = ("desktop", "mobile", "tablet", "tv", "other")
#: The context features, in order (NaN where the request did not say).
CONTEXT_FEATURES = ("hour", "weekday", "device")
#: Up to this many categories, the category features read a dense copy of the matrix.
DENSE_CATEGORIES = 64


@dataclass(frozen=True)
class ItemStats:
    """Per item code: what the features say about an item regardless of the person.

    Attributes:
        log_popularity: log(1 + distinct people who took it).
        log_recent: log(1 + interactions in the last `RECENT_DAYS` days of the data).
        first_seen: microseconds of its first interaction (the data's end when none).
        categories: (items x categories) 0/1 matrix, or None.
        data_end: the newest time in the data, microseconds (offline "now").
    """

    log_popularity: FloatArray
    log_recent: FloatArray
    first_seen: np.ndarray[Any, np.dtype[np.int64]]
    categories: sp.csr_matrix | None
    data_end: int

    @cached_property
    def dense_categories(self) -> FloatArray | None:
        """`categories` as a dense float32 array when there are at most `DENSE_CATEGORIES`
        (0.8 MB for 10,000 items and 20 genres), else None."""
        if self.categories is None or self.categories.shape[1] > DENSE_CATEGORIES:
            return None
        return np.asarray(self.categories.toarray(), dtype=np.float32)

    @classmethod
    def of(cls, data: Dataset) -> ItemStats:
        """The statistics of training data."""
        end = int(data.last_ts.max()) if len(data) else 0
        recent = data.last_ts >= end - RECENT_DAYS * _MICROS_PER_DAY
        first = np.full(data.n_items, end, dtype=np.int64)
        np.minimum.at(first, data.items, data.first_ts)
        return cls(
            log_popularity=np.log1p(data.item_counts).astype(np.float32),
            log_recent=np.log1p(np.bincount(data.items[recent], minlength=data.n_items)).astype(
                np.float32
            ),
            first_seen=first,
            categories=data.item_categories,
            data_end=end,
        )


def feature_names(sources: list[str], *, content: bool) -> list[str]:
    """The column names of `candidate_features`' output, in order."""
    names = [f"{source}_{part}" for source in sources for part in ("score", "rank")]
    names += ["log_popularity", "log_recent", "age_days", "category_affinity", "log_history"]
    if content:
        names.append("content_recent")
    return names + list(CONTEXT_FEATURES)


def candidate_features(
    candidates: CodeArray,
    source_scores: list[FloatArray],
    stats: ItemStats,
    history: sp.csr_matrix,
    *,
    now_us: int,
    recent_profile: FloatArray | None = None,
    item_vectors: FloatArray | None = None,
    context: tuple[float, float, float] = (np.nan, np.nan, np.nan),
) -> FloatArray:
    """The (candidates x features) matrix of one request (see `feature_names`).

    Args:
        candidates: the candidate item codes.
        source_scores: per source, its score of each candidate (NaN where it has none).
        stats: the training data's item statistics.
        history: the person's (1 x items) history row.
        now_us: the request's time (offline: the data's end), for item ages.
        recent_profile: the unit mean vector of the person's most recent items.
        item_vectors: item text vectors (with `recent_profile`: content similarity).
        context: hour of day, weekday, device code (`context_values`).
    """
    n = len(candidates)
    columns: list[FloatArray] = []
    for scores in source_scores:
        scores = np.asarray(scores, dtype=np.float32)
        columns.append(scores)
        ranks = np.empty(n, dtype=np.float32)
        ranks[np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")] = np.arange(1, n + 1)
        columns.append(ranks)
    columns.append(stats.log_popularity[candidates])
    columns.append(stats.log_recent[candidates])
    age = (now_us - stats.first_seen[candidates]) / _MICROS_PER_DAY
    columns.append(np.asarray(age, dtype=np.float32))
    columns.append(_category_affinity(candidates, stats, history))
    columns.append(np.full(n, np.log1p(history.nnz), dtype=np.float32))
    if item_vectors is not None:
        if recent_profile is None:
            columns.append(np.full(n, np.nan, dtype=np.float32))
        else:
            columns.append(np.asarray(item_vectors[candidates] @ recent_profile, np.float32))
    for value in context:
        columns.append(np.full(n, value, dtype=np.float32))
    return np.column_stack(columns).astype(np.float32)


def _category_affinity(
    candidates: CodeArray, stats: ItemStats, history: sp.csr_matrix
) -> FloatArray:
    """Per candidate: the largest share of the person's items in one of its categories."""
    categories = stats.categories
    if categories is None or history.nnz == 0 or categories.shape[1] == 0:
        return np.full(len(candidates), np.nan, dtype=np.float32)
    taken = history.indices
    dense = stats.dense_categories
    if dense is not None:  # a few categories: no sparse row indexing per request
        share = dense[taken].sum(axis=0) / len(taken)
        return np.asarray((dense[candidates] * share).max(axis=1), dtype=np.float32)
    share = np.asarray(categories[taken].sum(axis=0)).ravel() / len(taken)
    per_candidate = categories[candidates].multiply(share[None, :])
    return np.asarray(per_candidate.max(axis=1).toarray()).ravel().astype(np.float32)


def context_values(when_us: int | None, device: str | None) -> tuple[float, float, float]:
    """Hour of day (UTC), weekday (Monday 0) and device code of a request; NaN if unknown."""
    if when_us is None:
        hour = weekday = np.nan
    else:
        seconds = when_us // 1_000_000
        hour = float((seconds // 3600) % 24)
        weekday = float(((seconds // 86_400) + 3) % 7)  # 1970-01-01 was a Thursday
    code = np.nan if device is None else float(DEVICES.index(device) if device in DEVICES else 4)
    return hour, weekday, code
