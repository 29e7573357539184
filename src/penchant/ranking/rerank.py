"""Re-rankers: reorder the head of the list for variety and exploration; pins stay put."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.ranking.query import Query, Serving
from penchant.ranking.stages import BURIED, PIN, SCORE, append_rows
from penchant.types import Candidates


@dataclass
class Diversity:
    """Greedy re-ranking against repetition of labels (maximal marginal relevance).

    Position by position (k of them) over the top `window` rows, pick the row maximizing
    `relevance - strength x repeats / picked`: relevance is the score scaled to [0, 1], and
    `repeats` counts, over the row's labels of kind `by` (category, provider or tag), how
    often the rows picked so far carry them (for one label per item: how many of the picked
    rows share it). The rest of the list keeps its order after them.
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
        # shared[i, j]: how many labels rows i and j have in common
        only = serving.catalog.only_label(self.by)
        if only is not None:  # one label per item at most: a comparison
            labels = only[candidates.items[head]]
            shared = ((labels[:, None] == labels[None, :]) & (labels >= 0)[:, None]).astype(
                np.float64
            )
        else:
            dense = _dense_rows(kind, candidates.items[head])
            shared = dense @ dense.T
        score = candidates.column(SCORE)[head].astype(np.float64)
        spread = float(score.max() - score.min()) or 1.0
        relevance = (score - score.min()) / spread
        picked: list[int] = []
        repeats = np.zeros(len(head), dtype=np.float64)  # per row: labels shown so far
        open_rows = relevance.copy()  # relevance, -inf once picked
        value, penalty = relevance.copy(), np.empty(len(head), dtype=np.float64)
        for step in range(min(len(head), query.k)):
            best = int(value.argmax())
            picked.append(best)
            open_rows[best] = -np.inf
            repeats += shared[best]
            np.multiply(repeats, self.strength / (step + 1), out=penalty)
            np.subtract(open_rows, penalty, out=value)
        left = np.ones(len(head), dtype=bool)
        left[picked] = False
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


def _dense_rows(matrix: sp.csr_matrix, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Rows of a 0/1 CSR matrix as a dense float64 array (scipy's row indexing costs more
    than this on a hundred rows)."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    total = int(lengths.sum())
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols = matrix.indices[np.repeat(starts, lengths) + within]
    dense = np.zeros((len(rows), matrix.shape[1]), dtype=np.float64)
    dense[np.repeat(np.arange(len(rows)), lengths), cols] = 1.0
    return dense


def person_seed(who: str, surface: str, hour: int) -> int:
    """A seed that depends only on the person, the surface and the hour."""
    digest = hashlib.blake2b(f"{who}|{surface}|{hour}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")
