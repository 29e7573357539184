"""The stages between sources and re-rankers: combine scores, filter, apply business rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from penchant.ranking.query import Query, Serving
from penchant.types import Candidates, text_column

#: Columns stages write that are not source scores.
SCORE, BURIED, PIN = "score", "buried", "pin"


@dataclass
class Score:
    """score = sum over sources of weight x the source's normalized score; rows are sorted
    by it (ties by item code) and each row's leading source is recorded.

    `weights` is filled in by the pipeline from the sources' own `weight` options.
    """

    weights: dict[str, float] = field(default_factory=dict)

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        if not len(candidates):
            return candidates
        names = [n for n in self.weights if n in candidates.columns]
        if not names:
            return candidates
        parts = np.vstack([self.weights[n] * candidates.columns[n] for n in names])
        score = parts.sum(axis=0).astype(np.float32)
        leading = parts.argmax(axis=0)
        candidates.columns[SCORE] = score
        candidates.sources = text_column(names)[leading]
        return candidates.take(np.lexsort((candidates.items, -score)))


@dataclass
class Filter:
    """Drop what may not be shown (the request's eligibility: filters and exclusions).

    Sources only propose eligible items; this stage guards items added another way.
    """

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        return candidates.take(query.eligible[candidates.items])


@dataclass
class Rules:
    """The surface's and the request's business rules, in order: block, boost, bury, pin."""

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        catalog = serving.catalog
        for rule in query.rules:
            hit = catalog.matches(rule.match)
            if rule.action == "block":
                query.eligible = query.eligible & ~hit
                candidates = candidates.take(~hit[candidates.items])
            elif rule.action == "boost":
                score = candidates.column(SCORE).copy()
                score[hit[candidates.items]] *= rule.factor
                candidates.columns[SCORE] = score
            elif rule.action == "bury":
                buried = candidates.column(BURIED).copy()
                buried[hit[candidates.items]] = 1.0
                candidates.columns[BURIED] = buried
            else:
                candidates = _pin(candidates, hit, rule.position, rule.reason, query)
        score, buried = candidates.column(SCORE), candidates.column(BURIED)
        return candidates.take(np.lexsort((candidates.items, -score, buried)))


def _pin(
    candidates: Candidates,
    hit: np.ndarray[Any, Any],
    position: int,
    reason: str | None,
    query: Query,
) -> Candidates:
    """Mark the first eligible matching item (a candidate's best first, else any) for a slot."""
    pins = candidates.column(PIN)
    options = np.flatnonzero(hit[candidates.items] & (pins == 0))
    if len(options):
        row = int(options[np.argmax(candidates.column(SCORE)[options])])
    else:  # every matching candidate is pinned already: bring in one no source proposed
        free = np.flatnonzero(hit & query.eligible)
        free = free[~np.isin(free, candidates.items)]
        if not len(free):
            return candidates
        candidates = append_rows(candidates, Candidates(free[:1].astype(np.int64)))
        row = len(candidates) - 1
    pins = candidates.column(PIN).copy()
    pins[row] = float(position)
    candidates.columns[PIN] = pins
    candidates.reasons[row] = reason or "featured"
    candidates.sources[row] = "pin"
    return candidates


def append_rows(candidates: Candidates, extra: Candidates) -> Candidates:
    """Rows of `extra` after those of `candidates` (columns missing on a side are 0)."""
    names = set(candidates.columns) | set(extra.columns)
    return Candidates(
        np.concatenate([candidates.items, extra.items]),
        {n: np.concatenate([candidates.column(n), extra.column(n)]) for n in names},
        np.concatenate([candidates.reasons, extra.reasons]),
        np.concatenate([candidates.sources, extra.sources]),
    )


def place_pins(candidates: Candidates, k: int) -> Candidates:
    """The first k rows in order, with pinned rows moved to their positions (1-based)."""
    pins = candidates.column(PIN)
    pinned = np.flatnonzero(pins > 0)
    if not len(pinned):
        return candidates.take(np.arange(min(k, len(candidates))))
    rest = [int(i) for i in np.flatnonzero(pins == 0)]
    order: list[int] = rest[:k]
    for row in sorted(pinned.tolist(), key=lambda r: pins[r]):
        order.insert(min(int(pins[row]) - 1, len(order)), int(row))
    return candidates.take(np.array(order[:k], dtype=np.int64))
