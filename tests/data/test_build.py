"""`build_dataset`: event tables (the store's and a file's) to training pairs, by known answers.

Times are microseconds since the epoch. Every known-answer test runs on both table shapes
the builder accepts: `EVENT_TABLE_SCHEMA` (`ts` int64) and the store's `interactions`
(dictionary-encoded ids, `timestamp` as a UTC timestamp column).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import Dataset, Weighting, build_dataset, compact, min_support
from penchant.errors import InvalidInput
from penchant.ingest.bulk import read_events
from penchant.ingest.formats import get_preset
from penchant.schema import EventVocabulary
from penchant.store.base import EVENT_TABLE_SCHEMA
from shared_data import need_dataset

#: (user_id, item_id, type, value, ts in microseconds)
Row = tuple[str | None, str | None, str, float | None, int]
MakeTable = Callable[[Sequence[Row]], pa.Table]

DAY = 86_400 * 1_000_000
NOW = datetime(2024, 3, 1, tzinfo=UTC)
NOW_US = 1_709_251_200 * 1_000_000  # 2024-03-01T00:00:00Z, worked out by hand
T0 = NOW_US - 30 * DAY


def event_table(rows: Sequence[Row]) -> pa.Table:
    """Rows in the `EVENT_TABLE_SCHEMA` shape (what `read_events` yields)."""
    users, items, types, values, ts = zip(*rows, strict=True) if rows else ((),) * 5
    n = len(rows)
    return pa.table(
        {
            "event_id": [f"e{k}" for k in range(n)],
            "user_id": list(users),
            "session_id": [None] * n,
            "item_id": list(items),
            "type": list(types),
            "value": list(values),
            "ts": list(ts),
            "context": [None] * n,
        },
        schema=EVENT_TABLE_SCHEMA,
    )


def interactions_table(rows: Sequence[Row]) -> pa.Table:
    """Rows in the shape of `EventStore.interactions`: dictionary ids, a timestamp column."""
    users, items, types, values, ts = zip(*rows, strict=True) if rows else ((),) * 5

    def encoded(values: Sequence[str | None]) -> pa.Array:
        return pa.array(list(values), pa.string()).dictionary_encode()

    return pa.table(
        {
            "user_id": encoded(users),
            "session_id": encoded([None] * len(rows)),
            "item_id": encoded(items),
            "type": encoded(types),
            "value": pa.array(list(values), pa.float64()),
            "timestamp": pa.array(list(ts), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }
    )


@pytest.fixture(params=[event_table, interactions_table], ids=["event_table", "interactions"])
def make(request: pytest.FixtureRequest) -> MakeTable:
    """Each table shape in turn."""
    return request.param  # type: ignore[no-any-return]


def pairs(data: Dataset) -> dict[tuple[str, str], float]:
    """The dataset as {(user id, item id): weight}."""
    users = data.user_ids[data.users].tolist()
    items = data.item_ids[data.items].tolist()
    return dict(zip(zip(users, items, strict=True), data.weights.tolist(), strict=True))


def times(data: Dataset) -> dict[tuple[str, str], tuple[int, int]]:
    """The dataset as {(user id, item id): (first_ts, last_ts)}."""
    users = data.user_ids[data.users].tolist()
    items = data.item_ids[data.items].tolist()
    spans = zip(data.first_ts.tolist(), data.last_ts.tolist(), strict=True)
    return dict(zip(zip(users, items, strict=True), spans, strict=True))


def assert_same(left: Dataset, right: Dataset) -> None:
    for name in ("user_ids", "item_ids", "users", "items", "weights", "first_ts", "last_ts"):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)


# -- event types ---------------------------------------------------------------------------------
def test_default_type_weights(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "bought", "purchase", None, T0),
        ("u1", "clicked", "click", None, T0 + 1),
        ("u1", "viewed", "view", None, T0 + 2),
        ("u1", "shown", "impression", None, T0 + 3),
        ("u1", "dismissed", "dismiss", None, T0 + 4),
        ("u1", "skipped", "skip", None, T0 + 5),
        ("u1", "disliked", "dislike", None, T0 + 6),
    ]

    data = build_dataset([make(rows)])

    assert pairs(data) == {("u1", "bought"): 5.0, ("u1", "clicked"): 1.0, ("u1", "viewed"): 0.5}
    assert data.item_ids.tolist() == ["bought", "clicked", "viewed"]  # no dropped item kept


def test_custom_type_weights(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "a", "purchase", None, T0),  # not listed: dropped
        ("u1", "b", "click", None, T0),
        ("u1", "c", "view", None, T0),  # weight 0: dropped
        ("u1", "d", "impression", None, T0),
        ("u2", "c", "click", None, T0),
    ]
    rules = Weighting(type_weights={"click": 2.0, "view": 0.0, "impression": 0.25})

    data = build_dataset([make(rows)], rules)

    assert pairs(data) == {("u1", "b"): 2.0, ("u1", "d"): 0.25, ("u2", "c"): 2.0}


# -- repeated events -----------------------------------------------------------------------------
def test_max_keeps_the_strongest_event_and_sum_adds_them(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "a", "view", None, T0),
        ("u1", "a", "click", None, T0 + DAY),
        ("u1", "a", "click", None, T0 + 2 * DAY),
        ("u1", "a", "purchase", None, T0 + 3 * DAY),
        ("u1", "b", "view", None, T0),
        ("u1", "b", "view", None, T0 + DAY),
    ]

    assert pairs(build_dataset([make(rows)], Weighting(aggregate="max"))) == {
        ("u1", "a"): 5.0,
        ("u1", "b"): 0.5,
    }
    assert pairs(build_dataset([make(rows)], Weighting(aggregate="sum"))) == {
        ("u1", "a"): 7.5,
        ("u1", "b"): 1.0,
    }


def test_exact_duplicates_count_once_even_when_summing(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "a", "click", None, T0),
        ("u1", "a", "click", None, T0),  # the same event imported twice
        ("u1", "a", "click", None, T0 + 1),  # a second click, a microsecond later
        ("u1", "a", "view", None, T0),  # another type at the same time is another event
    ]
    rules = Weighting(aggregate="sum")

    assert pairs(build_dataset([make(rows)], rules)) == {("u1", "a"): 2.5}
    # and across chunks
    again = build_dataset([make(rows[:2]), make(rows[:1]), make(rows[2:])], rules)
    assert pairs(again) == {("u1", "a"): 2.5}


# -- ratings and dwell ---------------------------------------------------------------------------
def test_rating_threshold_drops_low_ratings_only(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "five", "rating", 5.0, T0),
        ("u1", "four", "rating", 4.0, T0),
        ("u1", "low", "rating", 3.5, T0),
        ("u1", "unrated", "rating", None, T0),
        ("u1", "clicked", "click", 1.0, T0),  # the threshold is about ratings only
    ]

    kept = build_dataset([make(rows)], Weighting(rating_threshold=4.0))
    everything = build_dataset([make(rows)])

    assert pairs(kept) == {("u1", "five"): 1.0, ("u1", "four"): 1.0, ("u1", "clicked"): 1.0}
    assert len(everything) == 5


def test_rating_as_weight_multiplies_the_type_weight(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "a", "rating", 4.0, T0),
        ("u1", "b", "rating", 2.5, T0),
        ("u1", "c", "rating", 0.0, T0),  # weight 0: not a preference
        ("u1", "d", "click", 3.0, T0),  # only ratings are multiplied
    ]
    rules = Weighting(type_weights={"rating": 0.5, "click": 1.0}, rating_as_weight=True)

    data = build_dataset([make(rows)], rules)

    assert pairs(data) == {("u1", "a"): 2.0, ("u1", "b"): 1.25, ("u1", "d"): 1.0}


def test_rating_threshold_and_rating_as_weight_together(make: MakeTable) -> None:
    rows: list[Row] = [("u1", str(v), "rating", v, T0) for v in (1.0, 2.0, 3.0, 4.0, 5.0)]
    rules = Weighting(rating_threshold=3.0, rating_as_weight=True)

    assert pairs(build_dataset([make(rows)], rules)) == {
        ("u1", "3.0"): 3.0,
        ("u1", "4.0"): 4.0,
        ("u1", "5.0"): 5.0,
    }


def test_min_dwell_seconds_drops_short_dwells(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "glance", "dwell", 5.0, T0),
        ("u1", "exact", "dwell", 10.0, T0),
        ("u1", "read", "dwell", 300.0, T0),
        ("u1", "unknown", "dwell", None, T0),
        ("u1", "clicked", "click", 1.0, T0),
    ]

    data = build_dataset([make(rows)], Weighting(min_dwell_seconds=10.0))

    assert pairs(data) == {("u1", "exact"): 1.0, ("u1", "read"): 1.0, ("u1", "clicked"): 1.0}


def test_dwell_saturation_scales_short_dwells(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "half", "dwell", 30.0, T0),
        ("u1", "full", "dwell", 60.0, T0),
        ("u1", "long", "dwell", 600.0, T0),
        ("u1", "sixth", "dwell", 10.0, T0),
        ("u1", "short", "dwell", 2.0, T0),
    ]
    rules = Weighting(
        type_weights={"dwell": 2.0}, min_dwell_seconds=5.0, dwell_saturation_seconds=60.0
    )

    data = pairs(build_dataset([make(rows)], rules))

    assert data == pytest.approx(
        {("u1", "half"): 1.0, ("u1", "full"): 2.0, ("u1", "long"): 2.0, ("u1", "sixth"): 1 / 3}
    )


# -- time decay ----------------------------------------------------------------------------------
def test_one_half_life_halves_the_weight(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "a", "purchase", None, NOW_US - 10 * DAY),  # one half-life: 2.5
        ("u1", "b", "click", None, NOW_US - 20 * DAY),  # two: 0.25
        ("u1", "c", "view", None, NOW_US),  # none: 0.5
        ("u1", "d", "click", None, NOW_US + 5 * DAY),  # after `now`: never above full weight
        ("u1", "e", "purchase", None, NOW_US - 5 * DAY),  # half a half-life: 5 / sqrt(2)
    ]

    data = pairs(build_dataset([make(rows)], Weighting(half_life_days=10.0), now=NOW))

    assert data == pytest.approx(
        {
            ("u1", "a"): 2.5,
            ("u1", "b"): 0.25,
            ("u1", "c"): 0.5,
            ("u1", "d"): 1.0,
            ("u1", "e"): 5 / math.sqrt(2),
        }
    )


def test_decay_then_aggregate(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "a", "purchase", None, NOW_US - 10 * DAY),  # 2.5 after decay
        ("u1", "a", "click", None, NOW_US),  # 1.0
        ("u1", "a", "view", None, NOW_US - 30 * DAY),  # 0.0625
    ]

    def weight(aggregate: str) -> float:
        rules = Weighting(half_life_days=10.0, aggregate=aggregate)  # type: ignore[arg-type]
        return pairs(build_dataset([make(rows)], rules, now=NOW))[("u1", "a")]

    assert weight("max") == pytest.approx(2.5)
    assert weight("sum") == pytest.approx(3.5625)


def test_decay_is_relative_to_the_newest_event_without_now(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "old", "click", None, T0),
        ("u1", "new", "click", None, T0 + 7 * DAY),
    ]

    data = pairs(build_dataset([make(rows)], Weighting(half_life_days=7.0)))

    assert data == pytest.approx({("u1", "old"): 0.5, ("u1", "new"): 1.0})


def test_a_naive_now_is_taken_as_utc(make: MakeTable) -> None:
    rows: list[Row] = [("u1", "a", "click", None, NOW_US - 3 * DAY)]
    rules = Weighting(half_life_days=3.0)

    naive = build_dataset([make(rows)], rules, now=NOW.replace(tzinfo=None))
    new_york = build_dataset([make(rows)], rules, now=NOW.astimezone(timezone(timedelta(hours=-5))))

    assert pairs(naive) == pytest.approx({("u1", "a"): 0.5})
    assert pairs(new_york) == pairs(naive)


def test_events_decayed_to_nothing_are_not_pairs() -> None:
    rows: list[Row] = [
        ("u1", "ancient", "click", None, NOW_US - 200 * DAY),  # 2**-200: 0 in float32
        ("u1", "recent", "click", None, NOW_US),
    ]

    data = build_dataset([event_table(rows)], Weighting(half_life_days=1.0), now=NOW)

    assert pairs(data) == {("u1", "recent"): 1.0}
    assert data.item_ids.tolist() == ["recent"]


# -- rows, times and vocabularies ----------------------------------------------------------------
def test_rows_without_user_or_item_are_skipped(make: MakeTable) -> None:
    rows: list[Row] = [
        (None, "a", "purchase", None, T0),  # anonymous
        ("u1", None, "purchase", None, T0),  # page-level
        (None, None, "click", None, T0),
        ("u2", "b", "click", None, T0),
    ]

    data = build_dataset([make(rows)])

    assert pairs(data) == {("u2", "b"): 1.0}
    assert (data.user_ids.tolist(), data.item_ids.tolist()) == (["u2"], ["b"])


def test_first_and_last_times_span_the_counted_events(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "a", "click", None, T0 + 30),
        ("u1", "a", "view", None, T0 + 10),
        ("u1", "a", "purchase", None, T0 + 20),
        ("u1", "a", "impression", None, T0),  # not counted: does not move first_ts
        ("u1", "a", "dislike", None, T0 + 99),  # nor last_ts
        ("u2", "a", "click", None, T0 + 5),
    ]

    data = build_dataset([make(rows)], Weighting(aggregate="sum"))

    assert times(data) == {("u1", "a"): (T0 + 10, T0 + 30), ("u2", "a"): (T0 + 5, T0 + 5)}


def test_vocabularies_follow_first_appearance(make: MakeTable) -> None:
    rows: list[Row] = [
        ("carol", "z", "impression", None, T0),  # not counted: not in the vocabulary
        ("bob", "y", "click", None, T0 + 3),
        ("alice", "x", "click", None, T0 + 1),
        ("bob", "x", "click", None, T0 + 2),
        ("carol", "w", "view", None, T0),
    ]

    data = build_dataset([make(rows)])

    assert data.user_ids.tolist() == ["bob", "alice", "carol"]
    assert data.item_ids.tolist() == ["y", "x", "w"]
    assert len(data) == 4


def test_vocabularies_follow_first_appearance_after_dedupe() -> None:
    rows: list[Row] = [
        ("u3", "i3", "click", None, 2),
        ("u1", "i0", "click", None, 2),
        ("u0", "i0", "click", None, 2),
    ]

    assert build_dataset([event_table(rows)]).user_ids.tolist() == ["u3", "u1", "u0"]


def test_both_table_shapes_give_the_same_dataset() -> None:
    rng = np.random.default_rng(11)
    rows = random_rows(rng, 400)
    rules = Weighting(rating_threshold=3.0, dwell_saturation_seconds=60.0, aggregate="sum")

    assert_same(
        build_dataset([event_table(rows)], rules), build_dataset([interactions_table(rows)], rules)
    )


def test_chunks_give_the_same_dataset_as_one_table() -> None:
    rng = np.random.default_rng(5)
    rows = random_rows(rng, 600)
    rules = Weighting(half_life_days=3.0, aggregate="sum", min_user_interactions=2)
    cuts = [0, 1, 1, 150, 151, 420, 600]  # an empty chunk and a one-row chunk among them
    chunks = [event_table(rows[a:b]) for a, b in itertools.pairwise(cuts)]

    whole = build_dataset([event_table(rows)], rules, now=NOW)
    parts = build_dataset(iter(chunks), rules, now=NOW)

    assert_same(whole, parts)


# -- minimum support (a k-core) ------------------------------------------------------------------
def test_minimums_repeat_until_nothing_changes(make: MakeTable) -> None:
    # z has one user; once it goes, carol has one item and goes too. One pass is not enough.
    rows: list[Row] = [
        ("carol", "y", "click", None, T0),
        ("carol", "z", "click", None, T0),
        ("alice", "x", "click", None, T0),
        ("alice", "y", "click", None, T0),
        ("bob", "x", "click", None, T0),
        ("bob", "y", "click", None, T0),
    ]
    rules = Weighting(min_user_interactions=2, min_item_interactions=2)

    data = build_dataset([make(rows)], rules)

    assert set(pairs(data)) == {("alice", "x"), ("alice", "y"), ("bob", "x"), ("bob", "y")}
    assert data.user_ids.tolist() == ["alice", "bob"]  # compacted, order kept
    assert data.item_ids.tolist() == ["y", "x"]
    assert data.matrix.shape == (2, 2)
    assert data.user_counts.tolist() == [2, 2] and data.item_counts.tolist() == [2, 2]


def test_minimums_count_distinct_items_not_events(make: MakeTable) -> None:
    rows: list[Row] = [
        ("u1", "a", "click", None, T0),
        ("u1", "a", "click", None, T0 + 1),
        ("u1", "a", "click", None, T0 + 2),
        ("u2", "a", "click", None, T0),
        ("u2", "b", "click", None, T0),
    ]

    data = build_dataset([make(rows)], Weighting(min_user_interactions=2))

    assert set(pairs(data)) == {("u2", "a"), ("u2", "b")}
    assert data.user_ids.tolist() == ["u2"]


def test_minimums_that_leave_nothing_raise(make: MakeTable) -> None:
    rows: list[Row] = [("u1", "a", "click", None, T0), ("u2", "b", "click", None, T0)]

    with pytest.raises(InvalidInput, match="min_item_interactions=2"):
        build_dataset([make(rows)], Weighting(min_item_interactions=2))


def test_min_support_and_compact_directly() -> None:
    data = Dataset.from_arrays(
        ["a", "b", "c", "unused"],
        ["x", "y", "z"],
        users=np.array([0, 0, 1, 1, 2]),
        items=np.array([0, 1, 0, 1, 2]),
        weights=np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
    )

    assert min_support(data, 1, 1) is data
    kept = min_support(data, 2, 1)
    assert kept.user_ids.tolist() == ["a", "b"] and kept.item_ids.tolist() == ["x", "y"]
    assert kept.weights.tolist() == [1.0, 2.0, 3.0, 4.0]

    small = compact(data.subset(np.array([False, False, True, False, True])))
    assert small.user_ids.tolist() == ["b", "c"] and small.item_ids.tolist() == ["x", "z"]
    assert pairs(small) == {("b", "x"): 3.0, ("c", "z"): 5.0}


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("column", ["user_id", "item_id", "type"])
def test_a_missing_column_is_named(column: str) -> None:
    table = event_table([("u1", "a", "click", None, T0)]).drop_columns([column])

    with pytest.raises(InvalidInput, match=column):
        build_dataset([table])


def test_a_table_without_any_time_column_is_rejected() -> None:
    table = event_table([("u1", "a", "click", None, T0)]).drop_columns(["ts"])

    with pytest.raises(InvalidInput, match="ts"):
        build_dataset([table])


def test_the_value_column_is_optional() -> None:
    table = event_table([("u1", "a", "click", None, T0)]).drop_columns(["value"])

    assert pairs(build_dataset([table])) == {("u1", "a"): 1.0}


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [("u1", "a", "impression", None, T0), ("u1", "b", "dislike", None, T0)],
        [(None, "a", "purchase", None, T0), ("u1", None, "click", None, T0)],
        [("u1", "a", "rating", 2.0, T0)],  # below the threshold below
    ],
    ids=["empty", "only-negative-types", "no-user-or-item", "all-filtered"],
)
def test_no_usable_event_raises(make: MakeTable, rows: list[Row]) -> None:
    with pytest.raises(InvalidInput, match="no usable interactions"):
        build_dataset([make(rows)], Weighting(rating_threshold=4.0))


def test_no_tables_at_all_raises() -> None:
    with pytest.raises(InvalidInput, match="no usable interactions"):
        build_dataset([])


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_an_event_without_a_time_is_skipped() -> None:
    table = event_table([("u1", "a", "click", None, T0)])
    table = pa.concat_tables(
        [
            table,
            pa.table(
                {name: [None] for name in EVENT_TABLE_SCHEMA.names}
                | {"user_id": ["u1"], "item_id": ["b"], "type": ["click"]},
                schema=EVENT_TABLE_SCHEMA,
            ),
        ]
    )

    data = build_dataset([table])

    assert times(data) == {("u1", "a"): (T0, T0)}


def test_nanosecond_timestamps_are_truncated_to_microseconds() -> None:
    table = interactions_table([("u1", "a", "click", None, T0)])
    ns = pa.array([T0 * 1000 + 1], pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", ns)

    assert times(build_dataset([table])) == {("u1", "a"): (T0, T0)}


# -- against a plain-Python aggregation ----------------------------------------------------------
USERS = ["u0", "u1", "u2", "u3", "u4", "u5", None]
ITEMS = ["i0", "i1", "i2", "i3", "i4", "i5", "i6", None]
TYPES = ["purchase", "click", "view", "rating", "dwell", "impression", "dislike", "like"]
VALUES = [None, 0.0, 1.0, 2.5, 3.0, 4.0, 5.0, 12.0, 45.0, 90.0]
STAMPS = [T0 + k * DAY // 2 for k in range(8)]


def random_rows(rng: np.random.Generator, n: int) -> list[Row]:
    """Random events over small alphabets, so that repeats and exact duplicates are common."""
    return [
        (
            USERS[rng.integers(len(USERS))],
            ITEMS[rng.integers(len(ITEMS))],
            TYPES[rng.integers(len(TYPES))],
            VALUES[rng.integers(len(VALUES))],
            STAMPS[rng.integers(len(STAMPS))],
        )
        for _ in range(n)
    ]


def expected(
    rows: Sequence[Row], rules: Weighting, now_us: int | None
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], tuple[int, int]], list[str]]:
    """What the documented rules give, event by event: weights, time spans, user order."""
    weighted: dict[tuple[str, str, str, int], float] = {}
    for user, item, kind, value, ts in rows:
        weight = rules.type_weights.get(kind, 0.0)
        if user is None or item is None or weight <= 0:
            continue
        v = math.nan if value is None else value
        if kind == "rating":
            if rules.rating_threshold is not None and not v >= rules.rating_threshold:
                continue
            if rules.rating_as_weight and not math.isnan(v):
                weight *= v
        if kind == "dwell":
            if rules.min_dwell_seconds > 0 and not v >= rules.min_dwell_seconds:
                continue
            if rules.dwell_saturation_seconds is not None:
                seconds = 0.0 if math.isnan(v) else v
                weight *= min(1.0, max(0.0, seconds / rules.dwell_saturation_seconds))
        if weight <= 0:
            continue
        key = (user, item, kind, ts)
        weighted[key] = max(weight, weighted.get(key, 0.0))
    if not weighted:
        return {}, {}, []
    ref = now_us if now_us is not None else max(k[3] for k in weighted)
    combined: dict[tuple[str, str], float] = {}
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for (user, item, _kind, ts), weight in weighted.items():
        if rules.half_life_days is not None:
            weight *= 0.5 ** (max(ref - ts, 0) / DAY / rules.half_life_days)
        pair = (user, item)
        if pair not in combined:
            combined[pair], spans[pair] = weight, (ts, ts)
        else:
            add = rules.aggregate == "sum"
            combined[pair] = combined[pair] + weight if add else max(combined[pair], weight)
            spans[pair] = (min(spans[pair][0], ts), max(spans[pair][1], ts))
    while True:  # the k-core: drop under-supported users and items until none is left
        per_user: dict[str, int] = defaultdict(int)
        per_item: dict[str, int] = defaultdict(int)
        for user, item in combined:
            per_user[user] += 1
            per_item[item] += 1
        weak = [
            p
            for p in combined
            if per_user[p[0]] < rules.min_user_interactions
            or per_item[p[1]] < rules.min_item_interactions
        ]
        if not weak:
            break
        for p in weak:
            del combined[p], spans[p]
    order = list(dict.fromkeys(u for u, _i, _k, _t in weighted if any(u == p[0] for p in combined)))
    return combined, {p: spans[p] for p in combined}, order


weightings = st.builds(
    Weighting,
    type_weights=st.sampled_from(
        [
            {"purchase": 5.0, "click": 1.0, "view": 0.5, "rating": 1.0, "dwell": 1.0},
            {"click": 2.0, "rating": 0.5, "dwell": 3.0, "impression": 0.1, "view": 0.0},
        ]
    ),
    rating_threshold=st.sampled_from([None, 3.0, 4.0]),
    rating_as_weight=st.booleans(),
    min_dwell_seconds=st.sampled_from([0.0, 10.0]),
    dwell_saturation_seconds=st.sampled_from([None, 60.0]),
    half_life_days=st.sampled_from([None, 0.5, 7.0]),
    aggregate=st.sampled_from(["max", "sum"]),
    min_user_interactions=st.sampled_from([1, 1, 2, 3]),
    min_item_interactions=st.sampled_from([1, 1, 2]),
)
event_rows = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from(ITEMS),
        st.sampled_from(TYPES),
        st.sampled_from(VALUES),
        st.sampled_from(STAMPS),
    ),
    min_size=20,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(rows=event_rows, rules=weightings, now=st.sampled_from([None, NOW_US, T0]))
def test_matches_a_plain_python_aggregation(
    rows: list[Row], rules: Weighting, now: int | None
) -> None:
    weights, spans, user_order = expected(rows, rules, now)
    when = None if now is None else datetime.fromtimestamp(now / 1_000_000, tz=UTC)

    if not weights:
        with pytest.raises(InvalidInput):
            build_dataset([event_table(rows)], rules, now=when)
        return
    data = build_dataset([event_table(rows)], rules, now=when)

    assert pairs(data) == pytest.approx(weights, rel=1e-6)
    assert times(data) == spans
    assert sorted(data.user_ids.tolist()) == sorted(user_order)  # order: see ..._after_dedupe
    assert sorted(data.item_ids.tolist()) == sorted({i for _u, i in weights})
    dense = data.matrix.toarray()
    for (user, item), weight in weights.items():
        u, i = data.user_codes([user])[0], data.item_codes([item])[0]
        assert dense[u, i] == pytest.approx(weight, rel=1e-6)
    assert data.matrix.nnz == len(weights)


@pytest.mark.parametrize("seed", range(12))
def test_large_random_tables_match_a_plain_python_aggregation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, 500)
    rules = Weighting(
        rating_threshold=[None, 3.0, 4.0][seed % 3],
        rating_as_weight=seed % 2 == 0,
        min_dwell_seconds=[0.0, 10.0][seed % 2],
        dwell_saturation_seconds=[None, 60.0][(seed // 2) % 2],
        half_life_days=[None, 0.5, 7.0][(seed // 3) % 3],
        aggregate="sum" if seed % 4 < 2 else "max",
        min_user_interactions=1 + seed % 4,
        min_item_interactions=1 + (seed // 4) % 3,
    )
    weights, spans, user_order = expected(rows, rules, None)

    data = build_dataset([event_table(rows)], rules)

    assert len(weights) > 10
    assert pairs(data) == pytest.approx(weights, rel=1e-6)
    assert times(data) == spans
    assert sorted(data.user_ids.tolist()) == sorted(user_order)


# -- the real MovieLens 100K (in ../shared/datasets, not in the repository) ---------------------
def movielens_tables(folder: Path, tmp_path: Path) -> list[pa.Table]:
    spec = get_preset("movielens-100k").events
    rejects = tmp_path / "r.jsonl"
    tables = list(
        read_events(folder / "u.data", spec, vocabulary=EventVocabulary(), rejects=rejects)
    )
    return tables


def test_movielens_100k(tmp_path: Path) -> None:
    folder = need_dataset("movielens-100k")
    tables = movielens_tables(folder, tmp_path)
    with (folder / "u.data").open(newline="") as f:
        ratings = [(u, i, float(r), int(t)) for u, i, r, t in csv.reader(f, delimiter="\t")]
    liked = [r for r in ratings if r[2] >= 4]

    data = build_dataset(tables)
    top = build_dataset(tables, Weighting(rating_threshold=4.0))
    scaled = build_dataset(tables, Weighting(rating_as_weight=True))

    assert (data.n_users, data.n_items, len(data)) == (943, 1682, 100_000)
    assert data.matrix.nnz == 100_000 and set(data.weights.tolist()) == {1.0}
    assert len(top) == len(liked) == 55_375
    assert top.n_users == len({r[0] for r in liked})
    assert top.n_items == len({r[1] for r in liked})
    assert float(scaled.weights.sum()) == sum(r[2] for r in ratings)
    first = {(u, i): t * 1_000_000 for u, i, _r, t in ratings}
    assert times(data) == {p: (t, t) for p, t in first.items()}


def test_typed_pairs_marks_the_pairs_of_chosen_types_in_the_datasets_vocabularies() -> None:
    from penchant.data import typed_pairs

    table = pa.table(
        {
            "user_id": ["a", "a", "b", "b", "z"],
            "item_id": ["x", "y", "x", "y", "x"],
            "type": ["view", "purchase", "dismiss", "dislike", "purchase"],
            "value": [None] * 5,
            "ts": [1, 2, 3, 4, 5],
        }
    )
    data = build_dataset([table.filter(pa.array([True, True, False, False, False]))])
    # b and z are not in the training data: their events are skipped
    pairs = typed_pairs(
        [table], {"bought": ["purchase"], "dismissed": ["dismiss", "dislike"]}, data
    )
    bought = pairs["bought"]
    assert bought.shape == (data.n_users, data.n_items)
    a, y = data.user_codes(["a"])[0], data.item_codes(["y"])[0]
    assert bought.nnz == 1 and bought[a, y] == 1
    assert pairs["dismissed"].nnz == 0
    # both kinds in one pass, once b is a trained user too
    seen = pa.table({"user_id": ["b"], "item_id": ["y"], "type": ["view"], "value": [None],
                     "ts": [9]})  # fmt: skip
    data = build_dataset([table.filter(pa.array([True, True, False, False, False])), seen])
    pairs = typed_pairs([table], {"bought": ["purchase"], "dismissed": ["dismiss"]}, data)
    b, x = data.user_codes(["b"])[0], data.item_codes(["x"])[0]
    assert pairs["dismissed"][b, x] == 1 and pairs["dismissed"].nnz == 1
    assert pairs["bought"].nnz == 1
