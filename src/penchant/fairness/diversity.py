"""What a top-K list holds: intra-list diversity, serendipity and miscalibration."""

from __future__ import annotations

from numbers import Real

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from penchant.data.toplists import PADDING, binary_rows, check_rows
from penchant.errors import InvalidInput
from penchant.fairness.lists import (
    BoolArray,
    FloatArray,
    IntArray,
    is_numeric,
    top_k,
)

# Cells of the (users, k, k) temporaries built at once: about 8 MiB per float64 array.
_BLOCK_CELLS = 1 << 20


def intra_list_diversity(
    recommended: npt.ArrayLike,
    k: int,
    *,
    item_labels: sp.spmatrix | sp.sparray | None = None,
    item_vectors: npt.ArrayLike | None = None,
) -> float:
    """Mean over users of the average pairwise dissimilarity of the items in their top-k.

    For a user whose top-k shows `n >= 2` items (padding ignored),
    `ILD_u = 2 / (n (n - 1)) * sum_{a < b} d(i_a, i_b)` (Smyth and McClave 2001, diversity
    as average dissimilarity; Ziegler et al. 2005 sum the similarity instead). Lists of fewer
    than two items are skipped; the result is the mean of `ILD_u` over the others.

    - With `item_labels`: `d(i, j) = 1 - |L_i & L_j| / |L_i | L_j|`, the Jaccard distance of
      the two label sets, and 0 when neither item has a label (scipy's convention). This is
      RecPack's `IntraListDiversityK` (scipy `jaccard` on one-hot rows), except that RecPack
      scores a list of fewer than two items 0 and keeps it in the mean. Elliot has no ILD
      (its diversity metrics are Gini, Shannon entropy, SRecall and item coverage).
    - With `item_vectors`: `d(i, j) = 1 - cos(v_i, v_j)`, in [0, 2]; [0, 1] when no
      coordinate is negative.

    Args:
        recommended: integer array `(n_users, K)` of item codes in rank order, `-1` padding.
        k: cut-off, between 1 and K.
        item_labels: sparse `(n_items, n_labels)` matrix whose stored nonzero entries give
            each item's labels (categories).
        item_vectors: dense `(n_items, d)` item vectors; a recommended item's row must not be
            all zero.

    Returns:
        The mean ILD, or NaN when no list shows two items.

    Raises:
        InvalidInput: not exactly one of `item_labels` and `item_vectors`, a bad shape or
            item code, a repeated item, or a zero vector for a recommended item.
    """
    if (item_labels is None) == (item_vectors is None):
        raise InvalidInput("pass exactly one of item_labels and item_vectors", field="item_labels")
    labels: sp.csr_matrix | None = None
    if item_labels is not None:
        labels = binary_rows(item_labels, "item_labels")
        n_items, width = labels.shape[0], 0
    else:
        vectors = np.asarray(item_vectors)
        if vectors.ndim != 2 or vectors.shape[1] == 0 or not is_numeric(vectors):
            raise InvalidInput("item_vectors must be a 2-D numeric array", field="item_vectors")
        vectors = vectors.astype(np.float64)
        if not np.isfinite(vectors).all():
            raise InvalidInput("item_vectors must be finite", field="item_vectors")
        n_items, width = vectors.shape
    top, shown = top_k(recommended, k, n_items)
    if labels is None:
        norms = np.linalg.norm(vectors, axis=1)
        zero = top[shown][norms[top[shown]] == 0]
        if zero.size:
            raise InvalidInput(
                f"item_vectors row {zero[0]} is all zero: its cosine is undefined",
                field="item_vectors",
            )
        unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    n_users, depth = top.shape
    upper = np.triu(np.ones((depth, depth), dtype=bool), 1)
    totals = np.zeros(n_users)
    block = max(1, _BLOCK_CELLS // (depth * max(depth, width)))
    for start in range(0, n_users, block):
        rows = slice(start, min(start + block, n_users))
        items = np.where(shown[rows], top[rows], 0)
        if labels is not None:
            distance = _jaccard_distances(labels, items)
        else:
            stacked = unit[items]
            distance = np.clip(1.0 - stacked @ stacked.transpose(0, 2, 1), 0.0, 2.0)
        pairs = upper & shown[rows, :, None] & shown[rows, None, :]
        totals[rows] = np.where(pairs, distance, 0.0).sum(axis=(1, 2))
    n = shown.sum(axis=1)
    listed = n >= 2
    if not listed.any():
        return float("nan")
    return float(np.mean(totals[listed] / (n[listed] * (n[listed] - 1) / 2.0)))


def serendipity(
    recommended: npt.ArrayLike,
    relevant: sp.spmatrix | sp.sparray,
    k: int,
    *,
    expected: npt.ArrayLike,
) -> float:
    """Share of each list that is relevant and unexpected, averaged over users (Ge et al. 2010).

    With `R_u` the items of the user's top-k (padding ignored), `E_u` the expected items
    (what a primitive recommender, e.g. the most popular list, would show) and `U_u` the
    relevant items: `ser_u = |(R_u \\ E_u) & U_u| / |R_u|` (Ge, Delgado-Battenfeld and
    Jannach 2010, "Beyond accuracy", with a 0/1 usefulness). Users whose top-k is all padding
    are skipped; a user with no relevant item scores 0.

    Args:
        recommended: integer array `(n_users, K)` of item codes in rank order, `-1` padding.
        relevant: sparse `(n_users, n_items)` matrix; stored nonzero entries are relevant.
        k: cut-off, between 1 and K.
        expected: item codes of the expected list, used whole (cut it to the depth you
            mean): `(K',)` for one list shared by every user, or `(n_users, K')` with `-1`
            padding for one list per user.

    Returns:
        The mean of `ser_u`, or NaN when every list is empty.

    Raises:
        InvalidInput: a bad shape or item code, or a repeated item in a list.
    """
    truth = binary_rows(relevant, "relevant")
    top, shown = top_k(recommended, k, truth.shape[1])
    n_users, n_items = top.shape[0], truth.shape[1]
    check_rows(truth, n_users, "relevant")
    base = np.asarray(expected)
    if base.ndim not in (1, 2) or not np.issubdtype(base.dtype, np.integer):
        raise InvalidInput("expected must be a 1-D or 2-D integer array", field="expected")
    if base.ndim == 2 and base.shape[0] != n_users:
        raise InvalidInput(
            f"expected has {base.shape[0]} rows but recommended has {n_users}", field="expected"
        )
    base = base.astype(np.int64)
    if base.size and (base.min() < PADDING or base.max() >= n_items):
        raise InvalidInput(f"expected item codes must lie in 0..{n_items - 1}", field="expected")
    if base.ndim == 1:
        unexpected = ~np.isin(top, base[base != PADDING])
    else:
        listed = base != PADDING
        owner = np.broadcast_to(np.arange(n_users)[:, None], base.shape)
        table = sp.csr_matrix(
            (np.ones(int(listed.sum())), (owner[listed], base[listed])), shape=truth.shape
        )
        unexpected = ~_lookup(table, top, shown)
    found = (_lookup(truth, top, shown) & unexpected & shown).sum(axis=1)
    n = shown.sum(axis=1)
    if not (n > 0).any():
        return float("nan")
    return float(np.mean(found[n > 0] / n[n > 0]))


def miscalibration(
    recommended: npt.ArrayLike,
    k: int,
    *,
    item_labels: sp.spmatrix | sp.sparray,
    history: sp.spmatrix | sp.sparray,
    alpha: float = 0.01,
) -> float:
    """Mean over users of Steck's miscalibration `KL(p || q~)`; see `miscalibration_per_user`.

    Returns:
        The mean over the users `miscalibration_per_user` scores (not NaN), or NaN when there
        are none; infinite when some user's is.
    """
    per_user = miscalibration_per_user(
        recommended, k, item_labels=item_labels, history=history, alpha=alpha
    )
    scored = per_user[~np.isnan(per_user)]
    return float(scored.mean()) if scored.size else float("nan")


def miscalibration_per_user(
    recommended: npt.ArrayLike,
    k: int,
    *,
    item_labels: sp.spmatrix | sp.sparray,
    history: sp.spmatrix | sp.sparray,
    alpha: float = 0.01,
) -> FloatArray:
    """How far each list's label mix is from the user's history (Steck 2018, "Calibrated
    recommendations").

    Each item spreads a weight of 1 equally over its labels: `p(g|i) = 1 / |L_i|` for
    `g in L_i`. The user's distribution is `p(g|u) = sum_{i in H_u} p(g|i) / |H_u|` over
    the labelled items `H_u` of their history (Steck's eq. 1 with every `w_{u,i} = 1`); the
    list's is `q(g|u) = sum_{i in R_u} p(g|i) / |R_u|` over the labelled items `R_u` of
    the top-k, every position weighted equally (Steck weights by the items' own `w_r`).
    Then `C_KL(p, q) = sum_g p(g|u) log(p(g|u) / q~(g|u))` with `q~ = (1 - alpha) q +
    alpha p` (natural log; Steck's eq. 5). Items without a label take no part.

    Args:
        recommended: integer array `(n_users, K)` of item codes in rank order, `-1` padding.
        k: cut-off, between 1 and K.
        item_labels: sparse `(n_items, n_labels)` matrix; stored nonzero entries are labels.
        history: sparse `(n_users, n_items)` matrix; stored nonzero entries are the items
            each user interacted with in training.
        alpha: weight of `p` mixed into `q`, in [0, 1]; with 0 a label of the history that
            the list lacks makes the divergence infinite.

    Returns:
        Float array of length n_users: `C_KL` (at least 0), or NaN for a user whose history
        or top-k holds no labelled item.

    Raises:
        InvalidInput: a bad shape, item code or alpha, or a repeated item in a list.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0 <= alpha <= 1:
        raise InvalidInput(f"alpha must be a number in [0, 1], got {alpha!r}", field="alpha")
    labels = binary_rows(item_labels, "item_labels")
    n_items = labels.shape[0]
    top, shown = top_k(recommended, k, n_items)
    n_users = top.shape[0]
    profile = binary_rows(history, "history")
    check_rows(profile, n_users, "history")
    if profile.shape[1] != n_items:
        raise InvalidInput(
            f"history has {profile.shape[1]} columns but item_labels has {n_items} rows",
            field="history",
        )
    per_item = np.diff(labels.indptr).astype(np.float64)
    spread = sp.csr_matrix(sp.diags(1.0 / np.maximum(per_item, 1.0)) @ labels)
    owner = np.broadcast_to(np.arange(n_users)[:, None], top.shape)
    listed = sp.csr_matrix(
        (np.ones(int(shown.sum())), (owner[shown], top[shown])), shape=(n_users, n_items)
    )
    p, p_mass = _normalized(profile @ spread)
    q, q_mass = _normalized(listed @ spread)
    owners = np.repeat(np.arange(n_users), np.diff(p.indptr))
    q_at = np.asarray(q[owners, p.indices]).ravel()
    mixed = (1.0 - alpha) * q_at + alpha * p.data
    # q~ = 0 (alpha 0, a label of the history missing from the list), or a q~ so small that
    # p / q~ overflows: the divergence is infinite, as the definition says
    with np.errstate(divide="ignore", over="ignore"):
        terms = p.data * np.log(p.data / mixed)
    # Rounding can leave a hair below zero where p equals q~.
    out = np.maximum(np.bincount(owners, weights=terms, minlength=n_users), 0.0)
    out[(p_mass == 0) | (q_mass == 0)] = np.nan
    return out


def _lookup(matrix: sp.csr_matrix, top: IntArray, shown: BoolArray) -> BoolArray:
    """Whether `matrix[u, top[u, a]]` is stored and nonzero, for every shown slot."""
    owner = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)
    out = np.zeros(top.shape, dtype=bool)
    out[shown] = np.asarray(matrix[owner[shown], top[shown]]).ravel() != 0
    return out


def _jaccard_distances(labels: sp.csr_matrix, items: IntArray) -> FloatArray:
    """`(b, k, k)` Jaccard distances between the label sets of each row's items."""
    b, depth = items.shape
    n_labels = labels.shape[1]
    rows = labels[items.ravel()]
    sizes = np.diff(rows.indptr)
    # Shift each user's labels into a column range of its own, so that one sparse product
    # pairs items of the same list only: the product is block-diagonal, k x k per user.
    owner = np.repeat(np.arange(b * depth, dtype=np.int64) // depth, sizes)
    columns = rows.indices.astype(np.int64) + owner * n_labels
    spread = sp.csr_matrix((rows.data, columns, rows.indptr), shape=(b * depth, b * n_labels))
    shared = sp.coo_matrix(spread @ spread.T)
    inter = np.zeros((b, depth, depth))
    inter[shared.row // depth, shared.row % depth, shared.col % depth] = shared.data
    size = sizes.reshape(b, depth).astype(np.float64)
    union = size[:, :, None] + size[:, None, :] - inter
    return np.where(union > 0, 1.0 - inter / np.maximum(union, 1.0), 0.0)


def _normalized(raw: sp.csr_matrix) -> tuple[sp.csr_matrix, FloatArray]:
    """Rows scaled to sum to 1 (all-zero rows stay zero), and the rows' former sums."""
    mass = np.asarray(raw.sum(axis=1), dtype=np.float64).ravel()
    scale = np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0)
    out = sp.csr_matrix(sp.diags(scale) @ raw)
    out.sum_duplicates()
    out.eliminate_zeros()
    return out, mass
