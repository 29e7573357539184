"""Who the lists expose and who they serve: long tail, popularity lift, exposure, utility gaps."""

from __future__ import annotations

from numbers import Real
from typing import TypedDict, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from penchant.data.toplists import binary_rows, check_rows, long_tail_items
from penchant.errors import InvalidInput
from penchant.fairness.lists import (
    FloatArray,
    IntArray,
    is_numeric,
    top_k,
)


class ExposureDisparity(TypedDict):
    """Each group's share of exposure and of relevance, their ratio, and the spread."""

    exposure_share: dict[int, float]
    relevance_share: dict[int, float]
    ratio: dict[int, float]
    disparity: float


class UtilityGap(TypedDict):
    """Mean utility per user group, and the spread between the best and worst served."""

    by_group: dict[int, float]
    gap: float
    relative_gap: float


def long_tail_share(
    recommended: npt.ArrayLike,
    k: int,
    *,
    item_counts: npt.ArrayLike,
    head_share: float = 0.8,
) -> float:
    """Average share of long-tail items in the top-k lists (APLT, Abdollahpouri et al. 2019).

    The head is the smallest set of most popular items whose counts reach `head_share` of
    all interactions: sort items by count, highest first (ties by lower item code), and put
    an item in the head while the counts before it sum to less than
    `head_share * sum(item_counts)`; the item that crosses the threshold is in the head
    (as in Elliot's `get_short_head`). Every other item, zero-count items included, is in
    the tail `T`. Then `APLT = mean_u |R_u & T| / |R_u|` over users whose top-k `R_u`
    (padding ignored) is not empty; with lists of equal length this is the share of all
    recommended (user, item) slots that hold a tail item.

    Args:
        recommended: integer array `(n_users, K)` of item codes in rank order, `-1` padding.
        k: cut-off, between 1 and K.
        item_counts: length `n_items`: each item's interactions in training.
        head_share: the head's share of all interactions, in [0, 1]; 0.8 (the default, as
            Elliot's `pop_ratio`) puts the items that take 80% of them in the head.

    Returns:
        APLT in [0, 1], or NaN when every list is empty.

    Raises:
        InvalidInput: a bad shape, item code, count or head share, no interaction at all,
            or a repeated item in a list.
    """
    counts = _counts(item_counts)
    if isinstance(head_share, bool) or not isinstance(head_share, Real) or not 0 <= head_share <= 1:
        raise InvalidInput(
            f"head_share must be a number in [0, 1], got {head_share!r}", field="head_share"
        )
    total = counts.sum()
    if total == 0:
        raise InvalidInput("item_counts are all 0: no head to split off", field="item_counts")
    top, shown = top_k(recommended, k, counts.size)
    tail = (shown & long_tail_items(counts, head_share)[np.maximum(top, 0)]).sum(axis=1)
    n = shown.sum(axis=1)
    if not (n > 0).any():
        return float("nan")
    return float(np.mean(tail[n > 0] / n[n > 0]))


@overload
def popularity_lift(
    recommended: npt.ArrayLike,
    k: int,
    *,
    item_counts: npt.ArrayLike,
    history: sp.spmatrix | sp.sparray,
    groups: None = None,
) -> float: ...


@overload
def popularity_lift(
    recommended: npt.ArrayLike,
    k: int,
    *,
    item_counts: npt.ArrayLike,
    history: sp.spmatrix | sp.sparray,
    groups: npt.ArrayLike,
) -> dict[int, float]: ...


def popularity_lift(
    recommended: npt.ArrayLike,
    k: int,
    *,
    item_counts: npt.ArrayLike,
    history: sp.spmatrix | sp.sparray,
    groups: npt.ArrayLike | None = None,
) -> float | dict[int, float]:
    """How much more popular the recommendations are than the users' own profiles.

    With `phi(i) = item_counts[i] / n_users`, the group average popularity of profiles is
    `GAP_p(g) = mean_{u in g} mean_{i in H_u} phi(i)` over each user's training items `H_u`,
    and of recommendations `GAP_r(g) = mean_{u in g} mean_{i in R_u} phi(i)` over their top-k
    `R_u` (padding ignored). The popularity lift (Abdollahpouri et al. 2020, "The connection
    between popularity bias, calibration, and fairness"; Kowald et al. 2020's `Delta GAP`)
    is `(GAP_r(g) - GAP_p(g)) / GAP_p(g)`: above 0 when the lists favour popular items more
    than the users did. Users with an empty history or an empty top-k are left out.

    Args:
        recommended: integer array `(n_users, K)` of item codes in rank order, `-1` padding.
        k: cut-off, between 1 and K.
        item_counts: length `n_items`: each item's interactions (or users) in training.
        history: sparse `(n_users, n_items)` matrix; stored nonzero entries are each user's
            training items.
        groups: optional integer array `(n_users,)` of user group codes; `-1` = no group.

    Returns:
        The lift over all users, or with `groups` a dict from each group code to its lift.
        NaN where a group has no user left or `GAP_p` is 0.

    Raises:
        InvalidInput: a bad shape, item code, count or group code, or a repeated item.
    """
    counts = _counts(item_counts)
    top, shown = top_k(recommended, k, counts.size)
    n_users = top.shape[0]
    profile = binary_rows(history, "history")
    check_rows(profile, n_users, "history")
    if profile.shape[1] != counts.size:
        raise InvalidInput(
            f"history has {profile.shape[1]} columns but item_counts has {counts.size}",
            field="history",
        )
    phi = counts / max(n_users, 1)
    size = np.diff(profile.indptr)
    n = shown.sum(axis=1)
    valid = (size > 0) & (n > 0)
    by_profile = np.asarray(profile @ phi).ravel() / np.maximum(size, 1)
    by_list = np.where(shown, phi[np.maximum(top, 0)], 0.0).sum(axis=1) / np.maximum(n, 1)
    if groups is None:
        return _lift(by_profile[valid], by_list[valid])
    codes = _codes(groups, n_users, "groups")
    return {
        int(g): _lift(by_profile[valid & (codes == g)], by_list[valid & (codes == g)])
        for g in np.unique(codes[codes >= 0])
    }


def exposure_disparity(
    recommended: npt.ArrayLike,
    k: int,
    *,
    item_groups: npt.ArrayLike,
    relevance: sp.spmatrix | sp.sparray | npt.ArrayLike | None = None,
) -> ExposureDisparity:
    """Each item group's share of position-discounted exposure, against its share of relevance.

    Rank `r` (1-based, padding keeps its rank) gets exposure `v_r = 1 / log2(1 + r)`
    (Singh and Joachims 2018, "Fairness of exposure in rankings"; the log base cancels in
    the shares). With `G(i)` the item's group:

    - `exposure_share[g] = sum_u sum_{r <= k, G(i_r) = g} v_r / (the same over every group)`.
    - `relevance_share[g] = sum_u sum_{i: G(i) = g} rel(u, i) / (the same over every group)`,
      over all items of the catalog, not only the recommended ones.
    - `ratio[g] = exposure_share[g] / relevance_share[g]` (inf for a group with exposure
      but no relevance, NaN for neither).
    - `disparity = max_g ratio[g] - min_g ratio[g]` over groups whose ratio is not NaN; when
      `relevance` is None, `max_g exposure_share[g] - min_g exposure_share[g]`, and
      `relevance_share` and `ratio` are empty.

    Items in group `-1` take no part. Every group code in `item_groups` appears in the
    dicts, with 0 exposure if no list shows it.

    Args:
        recommended: integer array `(n_users, K)` of item codes in rank order, `-1` padding.
        k: cut-off, between 1 and K.
        item_groups: integer array `(n_items,)` of group codes (e.g. provider); `-1` = none.
        relevance: optional `(n_users, n_items)` sparse or dense matrix of non-negative
            relevance (0/1 or graded).

    Returns:
        `{"exposure_share", "relevance_share", "ratio", "disparity"}` as above; shares are
        NaN when their total is 0.

    Raises:
        InvalidInput: a bad shape, item code, group code or relevance value, no group at
            all, or a repeated item.
    """
    groups = _codes(item_groups, None, "item_groups")
    present = np.unique(groups[groups >= 0])
    if present.size == 0:
        raise InvalidInput("item_groups puts no item in a group", field="item_groups")
    top, shown = top_k(recommended, k, groups.size)
    slot_group = np.where(shown, groups[np.maximum(top, 0)], -1)
    weight = np.broadcast_to(1.0 / np.log2(np.arange(2, top.shape[1] + 2)), top.shape)
    counted = slot_group >= 0
    exposure = np.bincount(
        slot_group[counted], weights=weight[counted], minlength=groups.max() + 1
    ).astype(np.float64)
    exposure_share = _shares(exposure, present)
    if relevance is None:
        values = np.array(list(exposure_share.values()))
        spread = float(values.max() - values.min()) if not np.isnan(values).any() else np.nan
        return {
            "exposure_share": exposure_share,
            "relevance_share": {},
            "ratio": {},
            "disparity": spread,
        }
    per_item = _relevance_by_item(relevance, top.shape[0], groups.size)
    member = groups >= 0
    mass = np.bincount(groups[member], weights=per_item[member], minlength=groups.max() + 1).astype(
        np.float64
    )
    relevance_share = _shares(mass, present)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = {int(g): float(np.float64(exposure_share[g]) / relevance_share[g]) for g in present}
    defined = np.array([value for value in ratio.values() if not np.isnan(value)])
    return {
        "exposure_share": exposure_share,
        "relevance_share": relevance_share,
        "ratio": ratio,
        "disparity": float(defined.max() - defined.min()) if defined.size else float("nan"),
    }


def utility_gap(per_user_metric: npt.ArrayLike, user_groups: npt.ArrayLike) -> UtilityGap:
    """How unequally a per-user metric serves user groups (Ekstrand et al. 2018, "All the cool
    kids, how do they fit in?").

    Over users with a value (not NaN) and a group (not `-1`): `by_group[g]` = mean of the
    group's values, `gap = max_g by_group[g] - min_g by_group[g]`, and
    `relative_gap = gap / m` with `m` the mean over all those users pooled (not the mean of
    the group means). A group whose values are all NaN is left out.

    Args:
        per_user_metric: float array `(n_users,)`, e.g. each user's NDCG@10; NaN = skip.
        user_groups: integer array `(n_users,)` of group codes; `-1` = no group.

    Returns:
        `{"by_group", "gap", "relative_gap"}`; `gap` is NaN when no group has a value, and
        `relative_gap` NaN also when `m` is 0.

    Raises:
        InvalidInput: a bad shape, a non-numeric metric, or a bad group code.
    """
    values = np.asarray(per_user_metric)
    if values.ndim != 1 or not is_numeric(values):
        raise InvalidInput("per_user_metric must be a 1-D numeric array", field="per_user_metric")
    values = values.astype(np.float64)
    codes = _codes(user_groups, values.size, "user_groups")
    keep = ~np.isnan(values) & (codes >= 0)
    by_group = {int(g): float(values[keep & (codes == g)].mean()) for g in np.unique(codes[keep])}
    if not by_group:
        return {"by_group": {}, "gap": float("nan"), "relative_gap": float("nan")}
    gap = max(by_group.values()) - min(by_group.values())
    overall = float(values[keep].mean())
    return {
        "by_group": by_group,
        "gap": gap,
        "relative_gap": gap / overall if overall != 0 else float("nan"),
    }


def _counts(item_counts: npt.ArrayLike) -> FloatArray:
    counts = np.asarray(item_counts)
    if counts.ndim != 1 or counts.size == 0 or not is_numeric(counts):
        raise InvalidInput("item_counts must be a non-empty 1-D numeric array", field="item_counts")
    counts = counts.astype(np.float64)
    if not (np.isfinite(counts) & (counts >= 0)).all():
        raise InvalidInput("item_counts must be finite and non-negative", field="item_counts")
    return counts


def _codes(codes: npt.ArrayLike, size: int | None, name: str) -> IntArray:
    """A 1-D integer array of group codes, `-1` or above, of the given length."""
    array = np.asarray(codes)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise InvalidInput(f"{name} must be a 1-D integer array", field=name)
    if size is not None and array.size != size:
        raise InvalidInput(f"{name} has {array.size} entries, expected {size}", field=name)
    if array.size and array.min() < -1:
        raise InvalidInput(f"{name} codes must be -1 (no group) or above", field=name)
    return array.astype(np.int64)


def _lift(profile: FloatArray, listed: FloatArray) -> float:
    if profile.size == 0 or profile.mean() == 0:
        return float("nan")
    base = float(profile.mean())
    return (float(listed.mean()) - base) / base


def _shares(totals: FloatArray, present: IntArray) -> dict[int, float]:
    whole = float(totals[present].sum())
    return {int(g): float(totals[g]) / whole if whole > 0 else float("nan") for g in present}


def _relevance_by_item(
    relevance: sp.spmatrix | sp.sparray | npt.ArrayLike, n_users: int, n_items: int
) -> FloatArray:
    """Each item's relevance summed over users, after checking shape and values."""
    if sp.issparse(relevance):
        matrix = sp.csr_matrix(relevance, dtype=np.float64)
        values = matrix.data
    else:
        dense = np.asarray(relevance)
        if dense.ndim != 2 or not (is_numeric(dense) or dense.dtype == np.bool_):
            raise InvalidInput("relevance must be a 2-D numeric matrix", field="relevance")
        matrix = dense.astype(np.float64)
        values = matrix.ravel()
    if matrix.shape != (n_users, n_items):
        raise InvalidInput(
            f"relevance has shape {matrix.shape}, expected ({n_users}, {n_items})",
            field="relevance",
        )
    if not (np.isfinite(values) & (values >= 0)).all():
        raise InvalidInput("relevance must be finite and non-negative", field="relevance")
    return np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel()
