"""Re-rankers: reorder the head of the list for variety and exploration; pins stay put."""

from __future__ import annotations

import bisect
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
        head, free = head_rows(candidates, self.window)
        strength = query.request.rerank.get("diversity", self.strength)
        if len(head) < 2 or strength <= 0:
            return candidates
        kind = serving.catalog.kind_labels(self.by)
        if not kind.shape[1]:
            return candidates
        score = candidates.column(SCORE)[head].astype(np.float64)
        spread = float(score.max() - score.min()) or 1.0
        relevance = (score - score.min()) / spread
        k = min(len(head), query.k)
        only = serving.catalog.only_label(self.by)
        if only is not None:  # one label per item at most
            picked = _greedy_one_label(relevance, only[candidates.items[head]], k, strength)
        else:
            picked = mmr(relevance, _dense_rows(kind, candidates.items[head]), k, strength)
        return reordered(candidates, head, free, picked)


def head_rows(
    candidates: Candidates, window: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The rows a re-ranker may move (neither pinned nor buried, in order): the first
    `window` of them, and all of them."""
    free = np.flatnonzero((candidates.column(PIN) <= 0) & (candidates.column(BURIED) <= 0))
    return free[:window], free


def reordered(
    candidates: Candidates,
    head: np.ndarray[Any, Any],
    free: np.ndarray[Any, Any],
    picked: list[int],
) -> Candidates:
    """The rows of `head` picked (in their order), the rest of the head, the other free rows,
    the buried ones, then the pinned ones (which `place_pins` puts in their places)."""
    pinned = candidates.column(PIN) > 0
    buried = candidates.column(BURIED) > 0
    left = np.ones(len(head), dtype=bool)
    left[picked] = False
    order = [head[picked], head[left], free[len(head) :], np.flatnonzero(buried & ~pinned)]
    return candidates.take(np.concatenate([*order, np.flatnonzero(pinned)]).astype(np.int64))


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


def mmr(
    relevance: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], k: int, strength: float
) -> list[int]:
    """The greedy picks of `Diversity`, for rows with any number of labels (`labels`: rows
    x labels, 0/1; `relevance` in [0, 1])."""
    shared = labels @ labels.T  # shared[i, j]: how many labels rows i and j have in common
    picked: list[int] = []
    repeats = np.zeros(len(relevance), dtype=np.float64)  # per row: labels shown so far
    open_rows = relevance.copy()  # relevance, -inf once picked
    value, penalty = relevance.copy(), np.empty(len(relevance), dtype=np.float64)
    for step in range(k):
        best = int(value.argmax())
        picked.append(best)
        open_rows[best] = -np.inf
        repeats += shared[best]
        np.multiply(repeats, strength / (step + 1), out=penalty)
        np.subtract(open_rows, penalty, out=value)
    return picked


def _greedy_one_label(
    relevance: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], k: int, strength: float
) -> list[int]:
    """The same picks as `mmr` when a row has one label at most (`labels`: its code, or
    -1), without a pass over every row per position (`strength` > 0).

    A row's penalty then depends on its label alone, so the best open row of a label is its
    first open row in relevance order, and rows of labels not shown yet (or of none) carry
    no penalty. At each position the candidates are the best row that no shown label holds,
    and the best open row (the head) of each shown label, looked at by decreasing relevance
    until one cannot beat the best so far. Ties go to the lower row, as `argmax` has it.
    """
    order = np.argsort(-relevance, kind="stable").tolist()
    rel, lab = relevance.tolist(), labels.tolist()
    by_label: dict[int, list[int]] = {}
    for row in order:
        by_label.setdefault(lab[row], []).append(row)
    shown: dict[int, int] = {}  # per label shown (>= 0): how many picked rows carry it
    taken = [False] * len(rel)
    heads: list[tuple[float, int, int]] = []  # (-relevance, row, label) of shown labels' heads
    picked: list[int] = []
    cursor, n = 0, len(order)  # cursor: passes rows taken or of a shown label (both final)
    for step in range(k):
        while cursor < n and (taken[order[cursor]] or lab[order[cursor]] in shown):
            cursor += 1
        best, best_value, best_at = -1, -np.inf, -1
        if cursor < n:
            best = order[cursor]
            best_value = rel[best]
        scale = strength / step if step else 0.0
        for at, (minus, row, label) in enumerate(heads):
            if -minus < best_value:
                break  # this head and the rest are worth less than their relevance
            value = rel[row] - shown[label] * scale
            if value > best_value or (value == best_value and row < best):
                best, best_value, best_at = row, value, at
        picked.append(best)
        taken[best] = True
        label = lab[best]
        if label < 0:
            continue
        if best_at >= 0:
            del heads[best_at]
        shown[label] = shown.get(label, 0) + 1
        rows = by_label[label]
        if shown[label] < len(rows):  # a label's picks are its first rows, in order
            nxt = rows[shown[label]]
            bisect.insort(heads, (-rel[nxt], nxt, label))
    return picked


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
