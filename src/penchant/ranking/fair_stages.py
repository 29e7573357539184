"""Pipeline stages that re-rank the head of a list for calibration, the long tail, popularity
and fair exposure (the algorithms are in `penchant.ranking.fair_rerank`); pins and buried
rows stay.

Each stage has one knob, `strength` in [0, 1], set per surface in its config and overridden
per request by `RankingRequest.rerank` (`{"calibration": 0.5}`: the stage kind, then its
strength), so that one surface can serve several trade-offs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.data.toplists import long_tail_items
from penchant.errors import InvalidInput
from penchant.ranking import fair_rerank
from penchant.ranking.query import Query, Serving
from penchant.ranking.request import RerankKind
from penchant.ranking.rerank import head_rows, reordered
from penchant.ranking.stages import SCORE
from penchant.types import Candidates


def _strength(kind: RerankKind, configured: float, query: Query) -> float:
    value = query.request.rerank.get(kind, configured)
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(f"rerank.{kind}: a strength in [0, 1]", field=f"rerank.{kind}")
    return float(value)


@dataclass
class Calibration:
    """Steck's calibrated re-ranking: the list's mix of `by` labels (category, tag,
    provider) follows the person's history's; `alpha` keeps the divergence finite."""

    by: str = "category"
    strength: float = 0.5
    window: int = 100
    alpha: float = 0.01

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        strength = _strength("calibration", self.strength, query)
        head, free = head_rows(candidates, self.window)
        labels = serving.catalog.kind_labels(self.by)
        if len(head) < 2 or strength == 0 or not labels.shape[1] or not len(query.history):
            return candidates
        history = query.history[query.history < labels.shape[0]]
        target = fair_rerank.label_shares(labels, history).sum(axis=0)
        if target.sum() <= 0:
            return candidates
        picked = fair_rerank.calibrated(
            candidates.column(SCORE)[head],
            fair_rerank.label_shares(labels, candidates.items[head]),
            target / target.sum(),
            min(len(head), query.k),
            strength,
            alpha=self.alpha,
        )
        return reordered(candidates, head, free, picked)


@dataclass
class LongTail:
    """Long-tail promotion (xQuAD over the head and tail of `model`'s popularity): the tail
    is every item outside the most popular ones that take `head_share` of all interactions;
    the person's own tail share of their history weighs the tail (the tail's share of all
    interactions for someone without one)."""

    model: str = "popular"
    strength: float = 0.3
    head_share: float = 0.8
    window: int = 100

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        strength = _strength("long_tail", self.strength, query)
        head, free = head_rows(candidates, self.window)
        if len(head) < 2 or strength == 0:
            return candidates
        tail = self._tail(serving)
        history = query.history
        affinity = float(tail[history].mean()) if len(history) else 1.0 - self.head_share
        picked = fair_rerank.long_tail(
            candidates.column(SCORE)[head],
            tail[candidates.items[head]],
            affinity,
            min(len(head), query.k),
            strength,
        )
        return reordered(candidates, head, free, picked)

    def _tail(self, serving: Serving) -> np.ndarray[Any, Any]:
        """Per catalog code: whether the item is in the long tail (items the models do not
        know are)."""
        return _per_item(
            serving,
            self.model,
            f"tail:{self.model}:{self.head_share}",
            lambda counts: long_tail_items(counts, self.head_share),
            unknown=True,
        )


def _per_item(
    serving: Serving,
    model: str,
    key: str,
    derive: Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]],
    *,
    unknown: Any,
) -> np.ndarray[Any, Any]:
    """Per catalog code, a value `derive`d from `model`'s interaction counts (`unknown` for
    items the model does not know), cached for the serving bundle under `key`."""
    cached = serving.cache.get(key)
    if cached is None:
        counts = np.asarray(serving.models[model].popularity_, dtype=np.float64)
        derived = np.asarray(derive(counts))
        cached = np.full(len(serving.catalog.ids), unknown, dtype=derived.dtype)
        cached[: len(counts)] = derived[: len(cached)]
        serving.cache[key] = cached
    return np.asarray(cached)


@dataclass
class PopularityPenalty:
    """Popularity compensation: the `window` rows' top k by relevance (as a share of the top
    row's) less `strength` x popularity, in relevance order; popularity is `model`'s count of
    each item over its most popular item's (0 for items the model does not know)."""

    model: str = "popular"
    strength: float = 0.4
    window: int = 100

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        strength = _strength("popularity_penalty", self.strength, query)
        head, free = head_rows(candidates, self.window)
        if len(head) < 2 or strength == 0:
            return candidates
        popularity = self._popularity(serving)
        picked = fair_rerank.popularity_penalty(
            candidates.column(SCORE)[head],
            popularity[candidates.items[head]],
            min(len(head), query.k),
            strength,
        )
        return reordered(candidates, head, free, picked)

    def _popularity(self, serving: Serving) -> np.ndarray[Any, Any]:
        """Per catalog code: the item's interactions over the most popular item's."""
        return _per_item(
            serving,
            self.model,
            f"popularity:{self.model}",
            lambda counts: counts / max(float(counts.max(initial=0.0)), 1.0),
            unknown=0.0,
        )


@dataclass
class FairExposure:
    """Exposure towards a target per group of `by` labels (provider, by default): the target
    is each group's share of the relevance in the window (`target = "relevance"`), an equal
    share for each group there (`"equal"`), or the group's share of all the interactions
    `model` counted (`"interactions"`: exposure in proportion to the engagement a group has
    earned across the catalog, which the window's relevance, coming from a model that
    favours popular groups, does not give); an item's group is its first label."""

    by: str = "provider"
    strength: float = 0.5
    target: str = "relevance"
    model: str | None = None  # the interactions' model: "popular" for that target, else none
    window: int = 100

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise InvalidInput(f"target: one of {', '.join(TARGETS)}", field="target")
        if self.target == "interactions" and self.model is None:
            self.model = "popular"

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        strength = _strength("fair_exposure", self.strength, query)
        head, free = head_rows(candidates, self.window)
        labels = serving.catalog.kind_labels(self.by)
        if len(head) < 2 or strength == 0 or not labels.shape[1]:
            return candidates
        first = _first_labels(serving, self.by)[candidates.items[head]]
        has = first >= 0
        present, groups = np.unique(first[has], return_inverse=True)
        code = np.full(len(head), -1, dtype=np.int64)
        code[has] = groups
        score = candidates.column(SCORE)[head].astype(np.float64)
        if self.target == "equal":
            share = np.full(len(present), 1.0 / max(len(present), 1))
        elif self.target == "interactions":
            share = self._interaction_shares(serving, labels)[present]
        else:
            unit = score - score.min() + 1e-12
            mass = np.bincount(code[has], weights=unit[has], minlength=len(present))
            share = mass / mass.sum()
        picked = fair_rerank.fair_exposure(score, code, share, min(len(head), query.k), strength)
        return reordered(candidates, head, free, picked)

    def _interaction_shares(self, serving: Serving, labels: sp.csr_matrix) -> Any:
        """Per label of `by`: its items' share of all of `model`'s interactions, each item
        counted under its first label."""
        model = self.model or "popular"
        key = f"interaction_shares:{model}:{self.by}"
        shares = serving.cache.get(key)
        if shares is None:
            counts = _per_item(serving, model, f"counts:{model}", lambda c: c, unknown=0.0)
            first = _first_labels(serving, self.by)
            has = first >= 0
            mass = np.bincount(first[has], weights=counts[has], minlength=labels.shape[1])
            shares = mass / mass.sum() if mass.sum() > 0 else mass
            serving.cache[key] = shares
        return shares


#: What `FairExposure` aims each group's share of exposure at.
TARGETS = ("relevance", "equal", "interactions")


def _first_labels(serving: Serving, by: str) -> np.ndarray[Any, Any]:
    """Per catalog code: the column of the item's first `by` label, or -1 for none."""
    key = f"first_label:{by}"
    first = serving.cache.get(key)
    if first is None:
        rows = serving.catalog.kind_labels(by)
        has = np.diff(rows.indptr) > 0
        first = np.full(rows.shape[0], -1, dtype=np.int64)
        first[has] = rows.indices[rows.indptr[:-1][has]]
        serving.cache[key] = first
    return np.asarray(first)
