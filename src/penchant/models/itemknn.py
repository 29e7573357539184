"""Item-based k-nearest-neighbours with cosine similarity, shrinkage and pruned neighbourhoods."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models.base import Arrays, CodeArray, Recommender, ScoreArray, binarized

Neighbourhood = Literal["target", "history"]

#: Co-occurrence entries computed per block of target items (bounds peak memory).
_BLOCK_ENTRIES = 10_000_000
#: A block with more nonzeros than this share of its cells is pruned as a dense array.
_DENSE_SHARE = 0.1


class ItemKNN(Recommender):
    """Scores an item by the summed similarity of the user's items among its k nearest items.

    The similarity of items i and j over their user vectors is
    `x_i . x_j / (|x_i| |x_j| + shrinkage)` (cosine when shrinkage is 0; shrinkage pulls
    similarities that rest on few common users towards zero). Each item keeps its `k` most
    similar other items with similarity at least `min_similarity`; a user's score for item
    i is the sum of the similarities between i and those of its neighbours the user has,
    each times the user's weight for it.

    Args:
        k: neighbours kept per item.
        shrinkage: added to the denominator of the cosine (0 for plain cosine).
        min_similarity: neighbours less similar than this are dropped.
        neighbourhood: `target` (the default) sums, for a candidate item, the similarities
            of the user's items among the candidate's own k nearest items; `history` adds
            each of the user's items' similarity to the items of *its* k-list, the item-based
            top-N of Deshpande and Karypis (2004) that LensKit and implicit implement. Both
            keep the same k similarities per item; the lists they produce differ.
        weighted: compute similarities from the interaction weights (else from 0/1). A
            user's history is scored with its weights either way (a weighted sum of
            similarities), so event-type or recency weights steer the list.
    """

    name = "itemknn"

    def __init__(
        self,
        k: int = 100,
        shrinkage: float = 0.0,
        min_similarity: float = 1e-6,
        weighted: bool = False,
        neighbourhood: Neighbourhood = "target",
    ) -> None:
        self.k = k
        self.shrinkage = shrinkage
        self.min_similarity = min_similarity
        self.weighted = weighted
        self.neighbourhood = neighbourhood

    def _fit(self, data: Dataset) -> None:
        if self.k < 1:
            raise InvalidInput(f"k: must be at least 1, got {self.k}")
        if self.shrinkage < 0:
            raise InvalidInput(f"shrinkage: must be >= 0, got {self.shrinkage}")
        if self.neighbourhood not in ("target", "history"):
            raise InvalidInput(f"neighbourhood: 'target' or 'history', got {self.neighbourhood!r}")
        x = data.matrix.astype(np.float32) if self.weighted else binarized(data.matrix)
        self.similarity_ = neighbours(x, self.k, self.shrinkage, self.min_similarity)
        self.__dict__.pop("_by_item", None)

    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        hist = history.astype(np.float32)
        scoring = self.similarity_ if self.neighbourhood == "target" else self._by_item
        return np.asarray((hist @ scoring).toarray(), dtype=np.float32)

    def _similar(self, items: CodeArray, one_hot: sp.csr_matrix) -> ScoreArray:
        return np.asarray(self._by_item[items].toarray(), dtype=np.float32)

    def item_similarity(self, a: CodeArray, b: CodeArray) -> ScoreArray:
        """The kept similarities of items `a` to items `b` (0 where not among the neighbours)."""
        self._check_fitted()
        block = self._by_item[np.asarray(a, dtype=np.int64)][:, np.asarray(b, dtype=np.int64)]
        return np.asarray(block.toarray(), dtype=np.float32)

    @cached_property
    def _by_item(self) -> sp.csr_matrix:
        """Row i: the neighbours of item i."""
        return sp.csr_matrix(self.similarity_.T)

    def _arrays(self) -> Arrays:
        s = self.similarity_
        return {"sim_indptr": s.indptr, "sim_indices": s.indices, "sim_data": s.data}

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        n = len(self.item_ids_)
        self.similarity_ = sp.csr_matrix(
            (arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=(n, n)
        )


def neighbours(x: sp.csr_matrix, k: int, shrinkage: float, min_similarity: float) -> sp.csr_matrix:
    """The pruned item-item similarity matrix of a users x items matrix.

    Args:
        x: users x items (float32).
        k: neighbours kept per target item.
        shrinkage: added to the product of the norms.
        min_similarity: smaller similarities are dropped.

    Returns:
        An items x items CSR matrix S where column i holds the neighbours of item i, so
        that `history @ S` scores every item. The diagonal is empty.
    """
    n_items = x.shape[1]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel()).astype(np.float64)
    xt = sp.csr_matrix(x.T)
    xc = sp.csc_matrix(x)
    # An upper bound of the co-occurrence entries each target item produces, to size blocks.
    per_user = np.diff(x.indptr).astype(np.float64)
    cost = np.asarray(xc.T @ per_user).ravel() if x.nnz else np.zeros(n_items)
    cost = np.minimum(cost, n_items)
    widest = max(1, _BLOCK_ENTRIES // max(n_items, 1))
    rows: list[np.ndarray[Any, Any]] = []
    cols: list[np.ndarray[Any, Any]] = []
    vals: list[np.ndarray[Any, Any]] = []
    start = 0
    while start < n_items:
        end = start + 1
        budget = cost[start]
        while end < n_items and budget + cost[end] <= _BLOCK_ENTRIES:
            budget += cost[end]
            end += 1
        # `cost` bounds the block's nonzeros: only a block that may be dense is narrowed to
        # what a dense copy of it can afford
        if budget > _DENSE_SHARE * n_items * (end - start):
            end = min(end, start + widest)
        block = sp.csc_matrix(xt @ xc[:, start:end])  # n_items x (end - start) dot products
        if block.nnz > _DENSE_SHARE * n_items * (end - start):
            r, c, v = _top_dense(block, start, norms, k, shrinkage, min_similarity)
        else:
            r, c, v = _top_per_column(block, start, norms, k, shrinkage, min_similarity)
        rows.append(r)
        cols.append(c)
        vals.append(v)
        start = end
    sim = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    sim.sort_indices()
    return sim


def _top_dense(
    block: sp.csc_matrix,
    offset: int,
    norms: np.ndarray[Any, Any],
    k: int,
    shrinkage: float,
    min_similarity: float,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """`_top_per_column` through a dense block: the same triples, faster on dense data."""
    n, width = block.shape
    targets = np.arange(offset, offset + width)
    sims = block.toarray().astype(np.float64)
    denominator = norms[:, None] * norms[targets][None, :] + shrinkage
    np.divide(sims, denominator, out=sims, where=denominator > 0)
    sims[denominator <= 0] = 0.0
    sims[targets, np.arange(width)] = -np.inf  # an item is not its own neighbour
    sims[~(sims >= min_similarity)] = -np.inf
    kk = min(k, n)
    kth = -np.partition(-sims, kk - 1, axis=0)[kk - 1]
    greater = sims > kth
    # among similarities equal to the k-th, the lower item codes go first, as in the sparse path
    ties = (sims == kth) & np.isfinite(sims)
    room = kk - greater.sum(axis=0)
    chosen = greater | (ties & (np.cumsum(ties, axis=0, dtype=np.int32) <= room))
    neighbour, column = np.nonzero(chosen)
    return neighbour, column + offset, sims[neighbour, column].astype(np.float32)


def _top_per_column(
    block: sp.csc_matrix,
    offset: int,
    norms: np.ndarray[Any, Any],
    k: int,
    shrinkage: float,
    min_similarity: float,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(neighbour, target, similarity) triples of the k best neighbours of each column."""
    sizes = np.diff(block.indptr)
    targets = np.repeat(np.arange(block.shape[1]), sizes) + offset
    neighbour = block.indices.astype(np.int64)
    denominator = norms[neighbour] * norms[targets] + shrinkage
    sims = np.divide(block.data, denominator, out=np.zeros(len(block.data)), where=denominator > 0)
    keep = (neighbour != targets) & (sims >= min_similarity)
    neighbour, targets, sims = neighbour[keep], targets[keep], sims[keep]
    # best first within each target; equal similarities go to the lower item code
    order = np.lexsort((neighbour, -sims, targets))
    targets_sorted = targets[order]
    starts = np.flatnonzero(np.r_[True, targets_sorted[1:] != targets_sorted[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    best = order[rank < k]
    return neighbour[best], targets[best], sims[best].astype(np.float32)
