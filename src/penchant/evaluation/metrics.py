"""Accuracy and catalog metrics of top-K recommendation lists, vectorized over users."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from penchant.data.toplists import (
    PADDING,
    as_top_lists,
    binary_rows,
    check_rows,
    check_top_lists,
)
from penchant.errors import InvalidInput

RANKING_METRICS = ("ndcg", "recall", "recall_norm", "precision", "map", "mrr", "hit_rate")
CATALOG_METRICS = ("coverage", "novelty", "gini", "arp")

# Cells of the (users, K) temporaries scored at once: about 8 MiB per float64 array.
_BLOCK_CELLS = 1 << 20

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def ranking_metrics(
    recommended: npt.ArrayLike,
    relevant: sp.spmatrix | sp.sparray,
    ks: Sequence[int],
) -> dict[str, FloatArray]:
    """Per-user accuracy of top-K lists against binary relevance, at several cut-offs.

    With `hit_i` = 1 when the item at rank `i` (1-based) is relevant, `H@k = sum_{i<=k} hit_i`,
    `R` the user's relevant set and `m = min(k, |R|)`:

    - `ndcg@k = DCG@k / IDCG@k`, `DCG@k = sum_{i<=k} hit_i / log2(i + 1)`,
      `IDCG@k = sum_{i<=m} 1 / log2(i + 1)` (binary gains).
    - `recall@k = H@k / |R|`; `recall_norm@k = H@k / m`; `precision@k = H@k / k`
      (a short list is still divided by `k`, as trec_eval does).
    - `map@k = sum_{i<=k} hit_i * (H@i / i) / |R|` (trec_eval's `map_cut`).
    - `mrr@k = 1 / i` for the first hit's rank `i <= k`, else 0.
    - `hit_rate@k = 1` if `H@k > 0`, else 0.

    Args:
        recommended: integer array `(n_users, K)` of item codes in rank order; `-1` pads a
            list shorter than K. Items within a row must be distinct.
        relevant: sparse `(n_users, n_items)` matrix whose stored nonzero entries mark the
            relevant items (values beyond nonzero are ignored). Every row needs at least one
            relevant item: drop users without test items before evaluating.
        ks: cut-offs, each between 1 and K.

    Returns:
        `"{metric}@{k}"` -> float64 array of length n_users, for every metric in
        `RANKING_METRICS` and every cut-off.

    Raises:
        InvalidInput: a bad shape or item code, a repeated item in a row, a cut-off out of
            range, or a user with no relevant item.
    """
    rec = as_top_lists(recommended)
    n_users, depth = rec.shape
    cutoffs = _cutoffs(ks, depth)
    truth = binary_rows(relevant, "relevant")  # sorted columns, which _hits relies on
    check_rows(truth, n_users, "relevant")
    check_top_lists(rec, truth.shape[1])
    n_rel = np.diff(truth.indptr).astype(np.int64)
    empty = np.flatnonzero(n_rel == 0)
    if empty.size:
        raise InvalidInput(
            f"{empty.size} user(s) have no relevant item (first: row {empty[0]}); "
            "drop users without test items before evaluating",
            field="relevant",
        )
    out = {f"{m}@{k}": np.empty(n_users) for m in RANKING_METRICS for k in cutoffs}
    block = max(1, _BLOCK_CELLS // depth)
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        lo, hi = truth.indptr[start], truth.indptr[stop]
        hits = _hits(rec[start:stop], n_rel[start:stop], truth.indices[lo:hi], truth.shape[1])
        _score(hits, n_rel[start:stop], cutoffs, out, slice(start, stop))
    return out


def catalog_metrics(
    recommended: npt.ArrayLike,
    ks: Sequence[int],
    *,
    n_items: int,
    item_counts: npt.ArrayLike,
    n_users_train: int,
) -> dict[str, float]:
    """List-level metrics of what the recommendations expose, at several cut-offs.

    Over the top-k items of every list (padding ignored), with `e_j` the number of lists
    that show item `j` and `c_j = item_counts[j]`:

    - `coverage@k`: distinct recommended items / `n_items`.
    - `novelty@k`: mean over every recommended (user, item) pair of the self-information
      `-log2(p_j)`, `p_j = max(c_j, 1) / n_users_train` (Zhou et al. 2010). An item unseen
      in training counts as seen once, so its novelty stays finite.
    - `gini@k`: Gini coefficient of `e_j` over all `n_items`, unexposed items included;
      0 is equal exposure, `(n_items - 1) / n_items` all exposure on one item.
    - `arp@k`: mean over users of the mean `c_j` of their recommended items (average
      recommendation popularity, Abdollahpouri et al.); users whose top-k is all padding
      are left out.

    `novelty`, `gini` and `arp` are NaN when no item at all is recommended within k.

    Args:
        recommended: integer array `(n_users, K)` of item codes in rank order, `-1` padding.
        ks: cut-offs, each between 1 and K.
        n_items: size of the catalog the codes index.
        item_counts: length `n_items`: how many training users interacted with each item.
        n_users_train: number of training users (the denominator of `p_j`).

    Returns:
        `"{metric}@{k}"` -> value, for every metric in `CATALOG_METRICS` and every cut-off.

    Raises:
        InvalidInput: a bad shape, item code or count, or a cut-off out of range.
    """
    if n_items < 1 or n_users_train < 1:
        raise InvalidInput("n_items and n_users_train must be at least 1")
    counts = np.asarray(item_counts)
    if counts.shape != (n_items,) or not np.issubdtype(counts.dtype, np.number):
        raise InvalidInput(f"item_counts must be a numeric array of length {n_items}")
    counts = counts.astype(np.float64)
    if not np.all((counts >= 0) & (counts <= n_users_train)):
        raise InvalidInput(
            "item_counts must lie between 0 and n_users_train (distinct users per item)",
            field="item_counts",
        )
    rec = as_top_lists(recommended)
    cutoffs = _cutoffs(ks, rec.shape[1])
    check_top_lists(rec, n_items)
    information = -np.log2(np.maximum(counts, 1.0) / n_users_train)
    out: dict[str, float] = {}
    for k in cutoffs:
        top = rec[:, :k]
        shown = top != PADDING
        exposure = np.bincount(top[shown], minlength=n_items)
        total = int(exposure.sum())
        out[f"coverage@{k}"] = float(np.count_nonzero(exposure)) / n_items
        out[f"novelty@{k}"] = float(exposure @ information) / total if total else np.nan
        out[f"gini@{k}"] = _gini(exposure)
        out[f"arp@{k}"] = _arp(top, shown, counts)
    return out


def _cutoffs(ks: Sequence[int], depth: int) -> list[int]:
    if len(ks) == 0:
        raise InvalidInput("ks must name at least one cut-off", field="ks")
    cutoffs: list[int] = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= depth:
            raise InvalidInput(f"cut-off {k!r} is not an integer in 1..{depth} (K)", field="ks")
        if int(k) not in cutoffs:
            cutoffs.append(int(k))
    return cutoffs


def _hits(
    rec: IntArray, n_rel: IntArray, indices: npt.NDArray[np.integer], n_items: int
) -> npt.NDArray[np.bool_]:
    """Whether each recommended item is relevant, by binary search of (row, item) keys."""
    offsets = np.arange(rec.shape[0], dtype=np.int64) * n_items
    # Rows ascend and columns are sorted within a row, so the keys are sorted.
    keys = np.repeat(offsets, n_rel) + indices
    queries = offsets[:, None] + rec
    found = np.searchsorted(keys, queries)
    # A padded query (offset - 1) could match the previous row's last item: mask it.
    hits: npt.NDArray[np.bool_] = (keys[np.minimum(found, keys.size - 1)] == queries) & (
        rec != PADDING
    )
    return hits


def _score(
    hits: npt.NDArray[np.bool_],
    n_rel: IntArray,
    cutoffs: list[int],
    out: dict[str, FloatArray],
    rows: slice,
) -> None:
    depth = hits.shape[1]
    ranks = np.arange(1, depth + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(ranks + 1.0)
    ideal = np.cumsum(discounts)
    gains = hits.astype(np.float64)
    cum_hits = np.cumsum(gains, axis=1)
    cum_dcg = np.cumsum(gains * discounts, axis=1)
    cum_ap = np.cumsum(gains * (cum_hits / ranks), axis=1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, depth + 1).astype(np.float64)
    relevant = n_rel.astype(np.float64)
    for k in cutoffs:
        found = cum_hits[:, k - 1]
        attainable = np.minimum(n_rel, k)
        out[f"ndcg@{k}"][rows] = cum_dcg[:, k - 1] / ideal[attainable - 1]
        out[f"recall@{k}"][rows] = found / relevant
        out[f"recall_norm@{k}"][rows] = found / attainable
        out[f"precision@{k}"][rows] = found / k
        out[f"map@{k}"][rows] = cum_ap[:, k - 1] / relevant
        out[f"mrr@{k}"][rows] = np.where(first <= k, 1.0 / first, 0.0)
        out[f"hit_rate@{k}"][rows] = found > 0


def _gini(exposure: npt.NDArray[np.integer]) -> float:
    """Gini coefficient as one minus twice the area under the Lorenz curve (trapezoids)."""
    total = exposure.sum()
    if total == 0:
        return float("nan")
    lorenz = np.concatenate(([0.0], np.cumsum(np.sort(exposure)) / total))
    area = float((lorenz[1:] + lorenz[:-1]).sum()) / (2 * exposure.size)
    return max(0.0, 1.0 - 2.0 * area)


def _arp(top: IntArray, shown: npt.NDArray[np.bool_], counts: FloatArray) -> float:
    per_user = np.where(shown, counts[np.maximum(top, 0)], 0.0).sum(axis=1)
    lengths = shown.sum(axis=1)
    listed = lengths > 0
    if not listed.any():
        return float("nan")
    return float(np.mean(per_user[listed] / lengths[listed]))
