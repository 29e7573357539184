"""Re-rankers: reorder the head of the list for variety and exploration; pins stay put."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from penchant.ranking.query import Query, Serving
from penchant.ranking.stages import BURIED, PIN, SCORE, append_rows
from penchant.types import Candidates


@dataclass
class Diversity:
    """Greedy re-ranking against repetition of labels (maximal marginal relevance).

    Position by position over the top `window` rows, pick the row maximizing
    `score - strength x share`, where `share` is the fraction of already-picked rows that
    share a label of kind `by` (category, provider or tag) with it.
    """

    by: str = "category"
    strength: float = 0.3
    window: int = 100

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        pinned = candidates.column(PIN) > 0
        buried = candidates.column(BURIED) > 0
        free = np.flatnonzero(~pinned & ~buried)
        head = free[: self.window]
        if len(head) < 2 or self.strength <= 0:
            return candidates
        kind = serving.catalog.kind_labels(self.by)
        if not kind.shape[1]:
            return candidates
        dense = np.asarray(kind[candidates.items[head]].toarray() > 0, dtype=np.float32)
        score = candidates.column(SCORE)[head].astype(np.float64)
        spread = float(score.max() - score.min()) or 1.0
        relevance = (score - score.min()) / spread
        picked: list[int] = []
        used = np.zeros(dense.shape[1], dtype=np.float32)
        left = np.ones(len(head), dtype=bool)
        for step in range(min(len(head), query.k * 2)):
            share = (dense @ used > 0) if step else np.zeros(len(head), dtype=bool)
            overlap = (dense * used).sum(axis=1) / max(step, 1) if step else 0.0
            value = relevance - self.strength * np.where(share, overlap, 0.0)
            value[~left] = -np.inf
            best = int(np.argmax(value))
            picked.append(best)
            left[best] = False
            used += dense[best]
        order = np.concatenate(
            [head[picked], head[left], free[self.window :], np.flatnonzero(buried & ~pinned)]
        )
        return candidates.take(np.concatenate([order, np.flatnonzero(pinned)]).astype(np.int64))


@dataclass
class Exploration:
    """With probability `epsilon` per slot, show an item the ranking would have left out
    (from further down the list, or a new item the models do not know yet).

    The draw is seeded from the person, the surface and the hour, so the same person sees
    the same list within the hour whatever the order of requests.
    """

    epsilon: float = 0.05
    new_items: bool = True

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        if self.epsilon <= 0 or len(candidates) == 0:
            return candidates
        rng = np.random.default_rng(query.seed)
        k = query.k
        free = [int(i) for i in np.flatnonzero(candidates.column(PIN) == 0)]
        head, tail = free[:k], free[k:]
        pool: list[Any] = [("row", r) for r in tail]
        if self.new_items:
            n_model = serving.catalog.n_model
            shown = set(candidates.items.tolist())
            fresh = np.flatnonzero(query.eligible[n_model:]) + n_model
            pool += [("new", int(c)) for c in fresh[:200] if int(c) not in shown]
        extra: list[int] = []
        for slot in range(len(head)):
            if not pool or rng.random() >= self.epsilon:
                continue
            kind, value = pool.pop(int(rng.integers(len(pool))))
            if kind == "row":
                head[slot] = value
            else:
                extra.append(value)
                head[slot] = len(candidates) + len(extra) - 1
        if extra:
            candidates = append_rows(candidates, Candidates(np.array(extra, dtype=np.int64)))
        explored = set(head) - set(free[:k])
        for row in explored:
            candidates.sources[row] = "exploration"
        rest = [r for r in free if r not in set(head)]
        pinned = [int(i) for i in np.flatnonzero(candidates.column(PIN) > 0)]
        return candidates.take(np.array(head + rest + pinned, dtype=np.int64))


def person_seed(who: str, surface: str, hour: int) -> int:
    """A seed that depends only on the person, the surface and the hour."""
    digest = hashlib.blake2b(f"{who}|{surface}|{hour}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")
