"""Session-based k-nearest neighbours: what came next in past sessions like this one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models.base import Arrays, CodeArray, Recommender, ScoreArray, binarized


class SessionKNN(Recommender):
    """Scores items by how many past sessions like the current one contained them.

    The session-kNN of Jannach and Ludewig (2017), with the recency weights of their
    V-SKNN: each training row (a session, or a person's history) is a past session. The
    similarity of the current session s and a past one n is
    `sum of w(i) over items i in both / sqrt(|s| |n|)`, where w(i) is the weight of item i
    in s: its position weight when the order is known (`score_sequences`: the newest item
    1, the one before 1 - 1/len, ...), else its weight in the given history row. Among the
    `sample` most recent past sessions that share an item with s, the `k` most similar are
    kept; an item's score is the summed similarity of those that contain it. A person's own
    training row is never their own neighbour.

    Args:
        k: neighbour sessions kept.
        sample: only the most recent sessions sharing an item are compared (0: all of them);
            keeps the cost of a request bounded on a long log.
    """

    name = "session-knn"

    recency_: np.ndarray[Any, np.dtype[np.int64]]

    def __init__(self, k: int = 100, sample: int = 1000) -> None:
        self.k = k
        self.sample = sample

    def _fit(self, data: Dataset) -> None:
        if self.k < 1:
            raise InvalidInput(f"k: must be at least 1, got {self.k}", field="k")
        if self.sample < 0:
            raise InvalidInput(f"sample: must be 0 or more, got {self.sample}", field="sample")
        newest = np.zeros(data.n_users, dtype=np.int64)
        np.maximum.at(newest, data.users, data.last_ts)
        self.recency_ = newest

    @property
    def _sessions(self) -> sp.csr_matrix:
        """Past sessions x items, 0/1 (made again when the history changed: an erasure)."""
        cached = self.__dict__.get("_binary")
        if cached is None or cached[0] is not self.history_:
            cached = self.__dict__["_binary"] = (self.history_, binarized(self.history_))
        return cached[1]

    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        sessions = self._sessions
        current = sp.csr_matrix(history, dtype=np.float32)
        sizes = np.maximum(np.diff(current.indptr), 1).astype(np.float32)
        past_sizes = np.maximum(np.diff(sessions.indptr), 1).astype(np.float32)
        overlap = sp.csr_matrix(current @ sessions.T)  # weighted shared items
        out = np.zeros((len(users), sessions.shape[1]), dtype=np.float32)
        for row in range(len(users)):
            start, end = overlap.indptr[row], overlap.indptr[row + 1]
            past = overlap.indices[start:end]
            shared = overlap.data[start:end]
            keep = past != users[row]  # never one's own training row
            past, shared = past[keep], shared[keep]
            if self.sample and len(past) > self.sample:
                newest = np.argsort(-self.recency_[past], kind="stable")[: self.sample]
                past, shared = past[newest], shared[newest]
            similarity = shared / np.sqrt(sizes[row] * past_sizes[past])
            if len(past) > self.k:
                best = np.argpartition(-similarity, self.k - 1)[: self.k]
                past, similarity = past[best], similarity[best]
            weights = sp.csr_matrix(similarity.astype(np.float32)[None, :])
            out[row] = (weights @ sessions[past]).toarray()[0]
        return out

    def score_sequences(self, sequences: Sequence[CodeArray]) -> ScoreArray:
        """Scores for sessions given as item codes in order, oldest first (position weights).

        A session with no item gets popularity, as a cold user does.
        """
        self._check_fitted()
        rows, cols, vals = [], [], []
        for row, items in enumerate(sequences):
            items = np.asarray(items, dtype=np.int64)
            n = len(items)
            weights = np.arange(1, n + 1, dtype=np.float32) / max(n, 1)
            # an item seen twice keeps its newest position
            last = {int(item): float(w) for item, w in zip(items, weights, strict=True)}
            rows += [row] * len(last)
            cols += list(last)
            vals += list(last.values())
        history = sp.csr_matrix(
            (np.asarray(vals, np.float32), (rows, cols)),
            shape=(len(sequences), len(self.item_ids_)),
        )
        return self.scores(np.full(len(sequences), -1, dtype=np.int64), history)

    def _arrays(self) -> Arrays:
        return {"user_recency": self.recency_}

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        self.recency_ = np.asarray(arrays["user_recency"], dtype=np.int64)
