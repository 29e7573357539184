"""Top-k lists of item codes, the shape every offline metric reads: one row per person."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.errors import InvalidInput

PADDING = -1
"""The item code that fills a list shorter than K; it holds its rank and never counts."""


def as_top_lists(recommended: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The lists as an int64 `(users, K)` array, refusing another shape or dtype.

    Raises:
        InvalidInput: naming `recommended`.
    """
    rec = np.asarray(recommended)
    if rec.ndim != 2 or rec.shape[1] == 0 or not np.issubdtype(rec.dtype, np.integer):
        raise InvalidInput(
            f"recommended must be a 2-D integer array (n_users, K >= 1), got "
            f"shape {rec.shape} of {rec.dtype}",
            field="recommended",
        )
    return rec.astype(np.int64, copy=False)


def long_tail_items(counts: Any, head_share: float) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per item, whether it is in the long tail: outside the head, the most popular items
    that take `head_share` of all interactions. Items go by decreasing count (ties to the
    lower code) and join the head while the counts before them sum to less than
    `head_share` of the total, so the item that crosses the threshold is in the head (as
    Elliot's `Popularity.get_short_head`)."""
    values = np.asarray(counts, dtype=np.float64)
    order = np.argsort(-values, kind="stable")
    before = np.concatenate(([0.0], np.cumsum(values[order])[:-1]))
    head = np.zeros(len(values), dtype=bool)
    head[order] = before < head_share * values.sum()
    return ~head


def check_top_lists(rec: np.ndarray[Any, Any], n_items: int) -> None:
    """Refuse item codes outside 0..n_items-1 (other than `PADDING`) and an item twice in a row.

    Raises:
        InvalidInput: naming `recommended`.
    """
    if rec.size and (rec.min() < PADDING or rec.max() >= n_items):
        raise InvalidInput(
            f"recommended item codes must lie in 0..{n_items - 1}, or be {PADDING} for padding",
            field="recommended",
        )
    ordered = np.sort(rec, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != PADDING)
    if repeated.any():
        row = int(np.flatnonzero(repeated.any(axis=1))[0])
        raise InvalidInput(f"recommended row {row} holds an item twice", field="recommended")


def binary_rows(matrix: sp.spmatrix | sp.sparray, name: str) -> sp.csr_matrix:
    """A per-person sparse matrix beside top lists (relevant items, histories, labels) as a
    CSR copy whose stored entries are the original nonzeros, each set to 1, each row's
    columns sorted.

    Raises:
        InvalidInput: naming `name`, when it is not a 2-D sparse matrix.
    """
    if not sp.issparse(matrix) or len(matrix.shape) != 2:
        raise InvalidInput(f"{name} must be a 2-D scipy.sparse matrix", field=name)
    out = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out


def check_rows(matrix: sp.csr_matrix, n_users: int, name: str) -> None:
    """Refuse (naming `name`) a matrix without one row per list."""
    if matrix.shape[0] != n_users:
        raise InvalidInput(
            f"{name} has {matrix.shape[0]} rows but recommended has {n_users}", field=name
        )
