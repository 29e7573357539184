"""From event tables (the store's or a file's) to a `Dataset`, one streaming pass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from penchant.data.dataset import Dataset
from penchant.data.weighting import Weighting
from penchant.errors import InvalidInput
from penchant.schema.common import to_micros

_MICROS_PER_DAY = 86_400 * 1_000_000


def build_dataset(
    tables: Iterable[pa.Table], weighting: Weighting | None = None, *, now: datetime | None = None
) -> Dataset:
    """Turn event tables into training pairs.

    Each table needs `user_id`, `item_id`, `type` and `value` columns, and the time as
    either `ts` (int64 microseconds, as `EVENT_TABLE_SCHEMA`) or `timestamp` (a timestamp
    column, as `EventStore.interactions` yields). Events without a user or an item
    (anonymous sessions, page-level events) are skipped. Exact duplicates (same user, item,
    type and time) count once.

    Args:
        tables: the events, in any number of chunks.
        weighting: the rules; the defaults when None.
        now: the reference time of the time decay; the newest event when None.

    Returns:
        One pair per (user, item) with its aggregated weight, over vocabularies in order of
        first appearance.

    Raises:
        InvalidInput: a table lacks a needed column, or no event is left to train on.
    """
    rules = weighting or Weighting()
    kept = [_weighted_chunk(table, rules) for table in tables]
    kept = [t for t in kept if t.num_rows]
    if not kept:
        raise InvalidInput(
            "no usable interactions: no event has a user, an item and a counted type"
        )
    events = pa.concat_tables(kept)
    del kept
    users = pc.dictionary_encode(events.column("user_id").combine_chunks())
    items = pc.dictionary_encode(events.column("item_id").combine_chunks())
    types = pc.dictionary_encode(events.column("type").combine_chunks())
    u = np.asarray(users.indices.to_numpy(), dtype=np.int64)
    i = np.asarray(items.indices.to_numpy(), dtype=np.int64)
    t = np.asarray(types.indices.to_numpy(), dtype=np.int64)
    ts = np.asarray(events.column("ts").to_numpy(), dtype=np.int64)
    w = np.asarray(events.column("weight").to_numpy(), dtype=np.float64)
    del events
    # one sort orders events by pair (for aggregation) and puts exact duplicates side by side
    order = np.lexsort((ts, t, i, u))
    u, i, t, ts, w = u[order], i[order], t[order], ts[order], w[order]
    del order
    same = (u[1:] == u[:-1]) & (i[1:] == i[:-1]) & (t[1:] == t[:-1]) & (ts[1:] == ts[:-1])
    starts = np.flatnonzero(np.r_[True, ~same])
    del same
    w = np.maximum.reduceat(w, starts)  # an event imported twice counts once
    u, i, ts = u[starts], i[starts], ts[starts]
    if rules.half_life_days is not None:
        ref = to_micros(now) if now is not None else int(ts.max())
        age_days = np.maximum(ref - ts, 0) / _MICROS_PER_DAY
        w = w * np.exp2(-age_days / rules.half_life_days)
    data = _aggregate(
        u,
        i,
        w,
        ts,
        user_ids=users.dictionary.to_numpy(zero_copy_only=False),
        item_ids=items.dictionary.to_numpy(zero_copy_only=False),
        how=rules.aggregate,
    )
    positive = data.weights > 0  # float32: events decayed to nothing are no preference
    if not positive.all():
        if not positive.any():
            raise InvalidInput("no usable interactions: every event decayed to weight 0")
        data = compact(data.subset(positive))
    return min_support(data, rules.min_user_interactions, rules.min_item_interactions)


def _weighted_chunk(table: pa.Table, rules: Weighting) -> pa.Table:
    """The chunk's counted events as user_id, item_id, type, weight, ts."""
    names = set(table.column_names)
    missing = {"user_id", "item_id", "type"} - names
    if missing or not names & {"ts", "timestamp"}:
        raise InvalidInput(f"event table lacks {sorted(missing) or ['ts']}")
    ts = table.column("ts") if "ts" in names else table.column("timestamp")
    if pa.types.is_timestamp(ts.type):
        # safe=False truncates nanoseconds instead of failing on them
        ts = pc.cast(pc.cast(ts, pa.timestamp("us", tz="UTC"), safe=False), pa.int64())
    weight, keep_np = counted_weights(table, rules)
    keep_np &= np.asarray(
        pc.and_(
            pc.and_(pc.is_valid(table.column("user_id")), pc.is_valid(table.column("item_id"))),
            pc.is_valid(ts),
        ).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    mask = pa.array(keep_np)
    return pa.table(
        {
            "user_id": pc.cast(table.column("user_id"), pa.string()).filter(mask),
            "item_id": pc.cast(table.column("item_id"), pa.string()).filter(mask),
            "type": pc.cast(table.column("type"), pa.string()).filter(mask),
            "weight": pa.array(weight[keep_np], pa.float64()),
            "ts": pc.cast(ts, pa.int64()).filter(mask),
        }
    )


def counted_weights(
    table: pa.Table, rules: Weighting
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.bool_]]]:
    """Each event's weight under the rules, and whether it counts as positive feedback.

    Only the `type` and `value` columns are read (users, items and times are not checked).

    Args:
        table: events with a `type` and, for ratings and dwell, a `value` column.
        rules: the weighting.

    Returns:
        The weight of each row before any time decay, and a mask of the rows that count
        (a counted type, past the rating and dwell thresholds, weight above 0).
    """
    names = set(table.column_names)
    types = pc.cast(table.column("type"), pa.string())
    positive = rules.positive_types
    type_index = pc.index_in(types, value_set=pa.array(positive, pa.string()))
    value = (
        pc.cast(table.column("value"), pa.float64())
        if "value" in names
        else pa.nulls(table.num_rows, pa.float64())
    )
    base = np.array([rules.type_weights[t] for t in positive], dtype=np.float64)
    weight = np.asarray(base, dtype=np.float64)[
        np.asarray(type_index.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    ]
    v = np.asarray(pc.fill_null(value, np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
    keep_np = np.asarray(pc.is_valid(type_index).to_numpy(zero_copy_only=False), dtype=bool)
    types_np = (
        types.to_numpy(zero_copy_only=False)
        if "dwell" in positive or "rating" in positive
        else None
    )
    if types_np is not None:
        is_rating = types_np == "rating"
        if rules.rating_threshold is not None:
            keep_np &= ~(is_rating & ~(v >= rules.rating_threshold))
        if rules.rating_as_weight:
            weight = np.where(is_rating & np.isfinite(v), weight * v, weight)
        is_dwell = types_np == "dwell"
        if rules.min_dwell_seconds > 0:
            keep_np &= ~(is_dwell & ~(v >= rules.min_dwell_seconds))
        if rules.dwell_saturation_seconds is not None:
            scale = np.clip(np.nan_to_num(v, nan=0.0) / rules.dwell_saturation_seconds, 0.0, 1.0)
            weight = np.where(is_dwell, weight * scale, weight)
    keep_np &= weight > 0
    return weight, keep_np


def _aggregate(
    u: np.ndarray[Any, Any],
    i: np.ndarray[Any, Any],
    w: np.ndarray[Any, Any],
    ts: np.ndarray[Any, Any],
    *,
    user_ids: np.ndarray[Any, Any],
    item_ids: np.ndarray[Any, Any],
    how: str,
) -> Dataset:
    """One row per (user, item), from events sorted by user then item.

    Weights are combined by `how`; the first and last times are kept.
    """
    if not len(u):
        raise InvalidInput("no usable interactions")
    starts = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (i[1:] != i[:-1])])
    reduce = np.add if how == "sum" else np.maximum
    weights = reduce.reduceat(w, starts)
    first = np.minimum.reduceat(ts, starts)
    last = np.maximum.reduceat(ts, starts)
    return Dataset.from_arrays(
        user_ids=user_ids,
        item_ids=item_ids,
        users=u[starts],
        items=i[starts],
        weights=weights,
        first_ts=first,
        last_ts=last,
    )


def min_support(data: Dataset, min_user: int, min_item: int) -> Dataset:
    """Drop users and items below the minimums, repeatedly, then compact the vocabularies.

    Raises:
        InvalidInput: nothing is left.
    """
    if min_user <= 1 and min_item <= 1:
        return data
    keep = np.ones(len(data), dtype=bool)
    while True:
        users_ok = np.bincount(data.users[keep], minlength=data.n_users) >= min_user
        items_ok = np.bincount(data.items[keep], minlength=data.n_items) >= min_item
        new_keep = keep & users_ok[data.users] & items_ok[data.items]
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    if not keep.any():
        raise InvalidInput(
            f"no interactions left after min_user_interactions={min_user} and "
            f"min_item_interactions={min_item}"
        )
    return compact(data.subset(keep))


def compact(data: Dataset) -> Dataset:
    """The same pairs over vocabularies holding only the users and items that occur."""
    used_users, u = np.unique(data.users, return_inverse=True)
    used_items, i = np.unique(data.items, return_inverse=True)
    return Dataset.from_arrays(
        user_ids=data.user_ids[used_users],
        item_ids=data.item_ids[used_items],
        users=u,
        items=i,
        weights=data.weights,
        first_ts=data.first_ts,
        last_ts=data.last_ts,
    )


def typed_pairs(
    tables: Iterable[pa.Table], kinds: Mapping[str, Sequence[str]], data: Dataset
) -> dict[str, sp.csr_matrix]:
    """Per kind, which (user, item) pairs of `data`'s vocabularies had an event of its types.

    What a training run keeps besides the weights: e.g. purchases and dismissals, which
    serving leaves out of a person's lists even where the pair carries no training weight.
    One pass over the events serves every kind; users or items outside `data` are skipped.

    Args:
        tables: events with `user_id`, `item_id` and `type` columns, in any number of chunks.
        kinds: kind name -> the event types it keeps (e.g. "dismissed" -> dismiss, dislike).
        data: the dataset whose vocabularies index the result.

    Returns:
        Per kind, a (data.n_users x data.n_items) 0/1 float32 matrix.
    """
    wanted = {kind: pa.array(list(types), type=pa.string()) for kind, types in kinds.items()}
    every = pa.array(sorted({t for types in kinds.values() for t in types}), type=pa.string())
    users: dict[str, list[np.ndarray[Any, Any]]] = {kind: [] for kind in kinds}
    items: dict[str, list[np.ndarray[Any, Any]]] = {kind: [] for kind in kinds}
    for table in tables:
        types = pc.cast(table.column("type"), pa.string())
        chosen = table.filter(pc.is_in(types, value_set=every))
        if not chosen.num_rows:
            continue
        u = data.user_index.codes(_strings(chosen.column("user_id")))
        i = data.item_index.codes(_strings(chosen.column("item_id")))
        chosen_types = pc.cast(chosen.column("type"), pa.string())
        for kind, values in wanted.items():
            keep = (u >= 0) & (i >= 0)
            keep &= np.asarray(pc.is_in(chosen_types, value_set=values).to_numpy(False), bool)
            users[kind].append(u[keep])
            items[kind].append(i[keep])
    out: dict[str, sp.csr_matrix] = {}
    for kind in kinds:
        u = np.concatenate(users[kind]) if users[kind] else np.zeros(0, dtype=np.int64)
        i = np.concatenate(items[kind]) if items[kind] else np.zeros(0, dtype=np.int64)
        pairs = sp.csr_matrix(
            (np.ones(len(u), dtype=np.float32), (u, i)), shape=(data.n_users, data.n_items)
        )
        pairs.sum_duplicates()
        pairs.data[:] = 1.0
        out[kind] = pairs
    return out


def _strings(column: pa.ChunkedArray) -> list[str]:
    """A (possibly dictionary-encoded) column as Python strings, nulls as ""."""
    return [v if v is not None else "" for v in pc.cast(column, pa.string()).to_pylist()]
