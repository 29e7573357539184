"""Logged impressions with their outcomes: the lists people were shown and what they took.

Every list Penchant serves is stored as impression events sharing a `context.request_id`
(see `penchant.service.impressions`); the outcomes that answer it (click, purchase, ...)
carry the same id. `impression_log` turns those events into aligned arrays over a
`Dataset`'s vocabularies, one row per impression with a 0/1 label, which is what a
learning-to-rank model learns from when a deployment has served lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from penchant.data.build import counted_weights
from penchant.data.dataset import Dataset
from penchant.data.weighting import Weighting
from penchant.errors import InvalidInput
from penchant.schema import Event
from penchant.schema.common import to_micros

LongArray = np.ndarray[Any, np.dtype[np.int64]]
#: Events turned into arrays at a time while reading.
_CHUNK = 50_000


@dataclass(frozen=True, eq=False)
class ImpressionLog:
    """One row per logged impression of a known person and item, a list's rows together.

    Rows are in time order of their lists; group codes count the lists from 0 in that
    order, so a higher code is never an older list.

    Attributes:
        users: the person's code in the dataset the log was built over.
        items: the item's code.
        ts: when the list was shown, microseconds since the epoch.
        groups: the code of the served list (one per request id).
        devices: the request's device (str), or None where it did not say.
        positions: the item's 0-based place in its list, or -1 where it was not logged.
        labels: 1 where the person engaged with the item in answer to that list, else 0.
    """

    users: LongArray
    items: LongArray
    ts: LongArray
    groups: LongArray
    devices: np.ndarray[Any, np.dtype[np.object_]]
    labels: np.ndarray[Any, np.dtype[np.int8]]
    positions: LongArray

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "ts", "groups", "devices", "labels", "positions"):
            if len(getattr(self, name)) != n:
                raise InvalidInput(f"impression log: {name} has not {n} values")

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_groups(self) -> int:
        """The number of served lists."""
        return int(self.groups.max()) + 1 if len(self.groups) else 0

    def group_times(self) -> LongArray:
        """Per group code, when its list was shown (its earliest row)."""
        out = np.full(self.n_groups, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(out, self.groups, self.ts)
        return out

    def usable_groups(self) -> LongArray:
        """The codes, ascending, of the lists with at least one engaged and one ignored item:
        the only ones a ranker can learn an order from."""
        positives = np.bincount(self.groups, weights=self.labels, minlength=self.n_groups)
        sizes = np.bincount(self.groups, minlength=self.n_groups)
        return np.flatnonzero((positives > 0) & (positives < sizes)).astype(np.int64)


def impression_log(
    events: Iterable[Event] | Iterable[pa.Table],
    data: Dataset,
    weighting: Weighting | None = None,
    *,
    window_s: float = 1800.0,
) -> ImpressionLog:
    """The impressions among events, labelled by the outcomes among the same events.

    An impression is labelled 1 when the same person had a positive event (one with weight
    above 0 under `weighting`) on the same item that carries the impression's
    `context.request_id`; an outcome without a request id counts for every impression of
    that person and item in the `window_s` seconds before it. Impressions of people or items
    outside `data`'s vocabularies (anonymous sessions, people without consent, items no one
    took) are dropped; impressions without a request id are grouped by person and time.
    The same item twice in one list counts once.

    Args:
        events: impressions and outcomes in any order: `Event` records (e.g. a store scan,
            flattened), or tables of `EVENT_TABLE_SCHEMA` (`EventStore.scan_tables`), whose
            context JSON is read for its request id, device and position only.
        data: the dataset whose vocabularies the log's codes index.
        weighting: what counts as engagement; the defaults when None.
        window_s: how long after an impression an outcome without a request id answers it.

    Returns:
        The log (empty when there are no impressions of known people and items).

    Raises:
        InvalidInput: a negative window.
    """
    if not window_s >= 0:
        raise InvalidInput("window_s: must be 0 or more seconds", field="window_s")
    reader = _Reader(data, weighting or Weighting())
    for chunk in events:
        if isinstance(chunk, pa.Table):
            reader.add_table(chunk)
        else:
            reader.add(chunk)
    reader.flush()
    return reader.log(int(window_s * 1_000_000))


@dataclass(frozen=True)
class _Rows:
    """A chunk of events as parallel columns (ids as strings, None where absent)."""

    users: list[str | None]
    items: list[str | None]
    ts: LongArray
    types: list[str]
    values: list[float | None]
    requests: list[str | None]
    devices: list[str | None]
    positions: LongArray

    @classmethod
    def of_events(cls, events: list[Event]) -> _Rows:
        contexts = [e.context for e in events]
        return cls(
            users=[e.user_id for e in events],
            items=[e.item_id for e in events],
            ts=np.array([to_micros(e.timestamp) for e in events], dtype=np.int64),
            types=[e.type for e in events],
            values=[e.value for e in events],
            requests=[None if c is None else c.request_id for c in contexts],
            devices=[None if c is None else c.device for c in contexts],
            positions=np.array(
                [-1 if c is None or c.position is None else c.position for c in contexts],
                dtype=np.int64,
            ),
        )

    @classmethod
    def of_table(cls, table: pa.Table) -> _Rows:
        parsed = [orjson.loads(c) if c else {} for c in table.column("context").to_pylist()]
        position = [p.get("position") for p in parsed]
        return cls(
            users=table.column("user_id").to_pylist(),
            items=table.column("item_id").to_pylist(),
            ts=np.asarray(table.column("ts").to_numpy(), dtype=np.int64),
            types=table.column("type").to_pylist(),
            values=table.column("value").to_pylist(),
            requests=[p.get("request_id") for p in parsed],
            devices=[p.get("device") for p in parsed],
            positions=np.array([-1 if p is None else p for p in position], dtype=np.int64),
        )


class _Reader:
    """Events -> arrays, a chunk at a time, so memory holds arrays rather than records."""

    def __init__(self, data: Dataset, weighting: Weighting) -> None:
        self.data, self.weighting = data, weighting
        self.requests: dict[tuple[str, ...], int] = {}  # request id -> raw group code
        self.device_names: dict[str | None, int] = {None: 0}
        self.pending: list[Event] = []
        self.shown: list[tuple[LongArray, ...]] = []  # user, item, ts, raw group, device, place
        self.by_request: list[tuple[LongArray, ...]] = []  # user, item, raw group
        self.by_time: list[tuple[LongArray, ...]] = []  # user, item, ts

    def add(self, event: Event) -> None:
        if event.user_id is None or event.item_id is None:
            return
        self.pending.append(event)
        if len(self.pending) >= _CHUNK:
            self.flush()

    def add_table(self, table: pa.Table) -> None:
        self.flush()
        for start in range(0, table.num_rows, _CHUNK):
            self._add(_Rows.of_table(table.slice(start, _CHUNK)))

    def flush(self) -> None:
        events, self.pending = self.pending, []
        if events:
            self._add(_Rows.of_events(events))

    def _request(self, rows: _Rows, r: int) -> int:
        request = rows.requests[r]
        if request is not None:
            key: tuple[str, ...] = ("r", request)
        else:
            key = ("t", str(rows.users[r]), str(int(rows.ts[r])))
        return self.requests.setdefault(key, len(self.requests))

    def _add(self, chunk: _Rows) -> None:
        # people and items outside the vocabularies (or absent: None) get code -1
        users = self.data.user_codes(["" if u is None else u for u in chunk.users])
        items = self.data.item_codes(["" if i is None else i for i in chunk.items])
        known = (users >= 0) & (items >= 0)
        known &= np.array([u is not None for u in chunk.users], dtype=bool)
        known &= np.array([i is not None for i in chunk.items], dtype=bool)
        ts = chunk.ts
        shown = known & np.array([t == "impression" for t in chunk.types], dtype=bool)
        if shown.any():
            rows = np.flatnonzero(shown)
            groups = np.array([self._request(chunk, int(r)) for r in rows], np.int64)
            devices = np.array(
                [
                    self.device_names.setdefault(chunk.devices[r], len(self.device_names))
                    for r in rows
                ],
                dtype=np.int64,
            )
            self.shown.append(
                (users[rows], items[rows], ts[rows], groups, devices, chunk.positions[rows])
            )
        table = pa.table(
            {
                "type": pa.array(chunk.types, pa.string()),
                "value": pa.array(chunk.values, pa.float64()),
            }
        )
        _, counted = counted_weights(table, self.weighting)
        rows = np.flatnonzero(known & counted)
        linked = np.array([chunk.requests[r] is not None for r in rows], dtype=bool)
        if linked.any():
            ids = rows[linked]
            groups = np.array([self._request(chunk, int(r)) for r in ids], np.int64)
            self.by_request.append((users[ids], items[ids], groups))
        if (~linked).any():
            ids = rows[~linked]
            self.by_time.append((users[ids], items[ids], ts[ids]))

    def log(self, window_us: int) -> ImpressionLog:
        users, items, ts, raw, device, place = _stack(self.shown, 6)
        # one row per (list, person, item): an item logged twice in a list counts once
        order = np.lexsort((np.arange(len(users)), items, users, raw))
        keep = np.zeros(len(users), dtype=bool)
        if len(order):
            keep[order[np.r_[True, _changes(raw[order], users[order], items[order])]]] = True
        users, items, ts, raw, device, place = (
            a[keep] for a in (users, items, ts, raw, device, place)
        )
        labels = _pairs_in((users, items, raw), _stack(self.by_request, 3))
        labels |= _answered_in_window(
            users, items, ts, _stack(self.by_time, 3), self.data, window_us
        )
        groups, order = _chronological_groups(raw, users, ts)
        names = np.empty(len(self.device_names), dtype=object)
        for name, code in self.device_names.items():
            names[code] = name
        return ImpressionLog(
            users=users[order],
            items=items[order],
            ts=ts[order],
            groups=groups[order],
            devices=names[device[order]],
            labels=labels[order].astype(np.int8),
            positions=place[order],
        )


def _stack(parts: list[tuple[LongArray, ...]], width: int) -> tuple[LongArray, ...]:
    if not parts:
        return tuple(np.zeros(0, dtype=np.int64) for _ in range(width))
    return tuple(np.concatenate([p[j] for p in parts]).astype(np.int64) for j in range(width))


def _changes(*keys: LongArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Between neighbouring rows of sorted keys: whether any key differs."""
    out = np.zeros(max(len(keys[0]) - 1, 0), dtype=bool)
    for key in keys:
        out |= key[1:] != key[:-1]
    return out


def _pairs_in(
    rows: tuple[LongArray, ...], table: tuple[LongArray, ...]
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per row of `rows` (parallel key columns): whether `table` holds the same keys."""
    n = len(rows[0])
    source = np.r_[np.zeros(n, np.int8), np.ones(len(table[0]), np.int8)]
    keys = [np.r_[a, b] for a, b in zip(rows, table, strict=True)]
    order = np.lexsort((source, *reversed(keys)))
    sorted_keys = [k[order] for k in keys]
    run = np.cumsum(np.r_[True, _changes(*sorted_keys)]) - 1 if len(order) else order
    in_table = np.zeros(int(run.max()) + 1 if len(run) else 0, dtype=bool)
    in_table[run[source[order] == 1]] = True
    out = np.zeros(n, dtype=bool)
    mine = source[order] == 0
    out[order[mine]] = in_table[run[mine]]
    return out


def _answered_in_window(
    users: LongArray,
    items: LongArray,
    ts: LongArray,
    outcomes: tuple[LongArray, ...],
    data: Dataset,
    window_us: int,
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per impression: whether an outcome of its person and item came within the window."""
    n = len(users)
    o_users, o_items, o_ts = outcomes
    if not n or not len(o_users):
        return np.zeros(n, dtype=bool)
    pair = np.r_[users, o_users] * data.n_items + np.r_[items, o_items]
    when = np.r_[ts, o_ts]
    is_outcome = np.r_[np.zeros(n, bool), np.ones(len(o_users), bool)]
    # impressions before outcomes of the same moment: an outcome at once still answers
    order = np.lexsort((is_outcome, when, pair))
    pair, when, is_outcome = pair[order], when[order], is_outcome[order]
    total = len(order)
    position = np.where(is_outcome, np.arange(total), total)
    following = np.minimum.accumulate(position[::-1])[::-1]  # next outcome at or after
    nxt = np.minimum(following, total - 1)
    hit = (following < total) & (pair[nxt] == pair) & (when[nxt] - when <= window_us)
    out = np.zeros(n, dtype=bool)
    mine = ~is_outcome
    out[order[mine]] = hit[mine]
    return out


def _chronological_groups(
    raw: LongArray, users: LongArray, ts: LongArray
) -> tuple[LongArray, LongArray]:
    """Dense group codes per (request, person) in order of time, and the row order that puts
    each list's rows together in that order."""
    if not len(raw):
        return raw, raw
    by_key = np.lexsort((ts, users, raw))
    starts = np.r_[True, _changes(raw[by_key], users[by_key])]
    key = np.empty(len(raw), dtype=np.int64)
    key[by_key] = np.cumsum(starts) - 1
    n_keys = int(key.max()) + 1
    shown_at = np.full(n_keys, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(shown_at, key, ts)
    rank = np.empty(n_keys, dtype=np.int64)
    rank[np.lexsort((np.arange(n_keys), shown_at))] = np.arange(n_keys)
    groups = rank[key]
    return groups, np.lexsort((np.arange(len(raw)), groups))
