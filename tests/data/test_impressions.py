"""The impression log: served lists labelled by what the same person took from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from penchant.data import Dataset, ImpressionLog, Weighting, impression_log, split
from penchant.errors import InvalidInput
from penchant.schema import Event, EventContext
from penchant.store import events_to_table

T0 = datetime(2024, 5, 6, 12, tzinfo=UTC)
ITEMS = ["a", "b", "c", "d", "e", "f"]


def dataset() -> Dataset:
    """People u and v; every item taken by someone (the log needs them in the vocabulary)."""
    return Dataset.from_arrays(
        ["u", "v"],
        ITEMS,
        users=np.array([0, 0, 0, 1, 1, 1]),
        items=np.arange(6),
        first_ts=np.arange(6) * 1_000_000,
    )


def shown(user: str | None, items: list[str], request: str | None, at: datetime) -> list[Event]:
    return [
        Event(
            user_id=user,
            session_id="s",
            item_id=item,
            type="impression",
            timestamp=at,
            context=EventContext(request_id=request, device="mobile", position=p),
        )
        for p, item in enumerate(items)
    ]


def did(
    user: str, item: str, kind: str, at: datetime, request: str | None = None, **extra: float
) -> Event:
    context = EventContext(request_id=request) if request else None
    return Event(user_id=user, item_id=item, type=kind, timestamp=at, context=context, **extra)


def labels_of(log: ImpressionLog, data: Dataset) -> dict[tuple[str, str, int], int]:
    """(person, item, group) -> label."""
    return {
        (str(data.user_ids[u]), str(data.item_ids[i]), int(g)): int(label)
        for u, i, g, label in zip(log.users, log.items, log.groups, log.labels, strict=True)
    }


def test_labels_follow_the_request_id_or_the_window() -> None:
    data = dataset()
    minutes = timedelta(minutes=1)
    events = [
        *shown("u", ["a", "b", "c", "d", "e", "f"], "r1", T0),
        did("u", "a", "click", T0 + minutes, "r1"),  # answers r1: 1
        did("v", "b", "click", T0 + minutes, "r1"),  # another person's click: b stays 0
        did("u", "c", "click", T0 + 10 * minutes),  # no request id, in the window: 1
        did("u", "d", "click", T0 + 31 * minutes),  # no request id, after 30 minutes: 0
        did("u", "e", "dismiss", T0 + minutes, "r1"),  # not engagement: 0
        did("u", "f", "rating", T0 + minutes, "r1", value=2.0),  # below the threshold: 0
    ]
    log = impression_log(events, data, Weighting(rating_threshold=4.0), window_s=1800)
    assert labels_of(log, data) == {
        ("u", "a", 0): 1,
        ("u", "b", 0): 0,
        ("u", "c", 0): 1,
        ("u", "d", 0): 0,
        ("u", "e", 0): 0,
        ("u", "f", 0): 0,
    }
    assert len(log) == 6 and log.n_groups == 1
    assert log.devices.tolist() == ["mobile"] * 6
    assert log.ts.tolist() == [int(T0.timestamp() * 1_000_000)] * 6
    # a longer window reaches d's click
    wide = impression_log(events, data, Weighting(rating_threshold=4.0), window_s=3600)
    assert labels_of(wide, data)[("u", "d", 0)] == 1


def test_an_outcome_before_its_impression_does_not_answer_it() -> None:
    data = dataset()
    events = [did("u", "a", "click", T0 - timedelta(seconds=1)), *shown("u", ["a"], "r", T0)]
    assert impression_log(events, data).labels.tolist() == [0]


def lists_of_all_kinds() -> list[Event]:
    """Two lists with request ids, one without; unknown and absent people and items."""
    later = T0 + timedelta(hours=1)
    return [
        *shown("v", ["d", "e"], "late", later),
        *shown("u", ["a", "b", "zz"], "early", T0),  # zz is not in the vocabulary
        *shown(None, ["a", "b"], "anonymous", T0),  # a session without a person
        *shown("nobody", ["a"], "unknown", T0),
        *shown("u", ["c", "c", "d"], None, later),  # no request id; c logged twice
        did("u", "a", "purchase", T0, "early"),
        did("v", "e", "click", later, "late"),
    ]


def test_groups_are_lists_in_time_order_and_unknowns_are_dropped() -> None:
    data = dataset()
    log = impression_log(lists_of_all_kinds(), data)
    assert len(log) == 2 + 2 + 2 and log.n_groups == 3
    assert (np.diff(log.groups) >= 0).all() and (np.diff(log.ts) >= 0).all()
    by_group = {
        int(g): sorted(str(data.item_ids[i]) for i in log.items[log.groups == g])
        for g in range(log.n_groups)
    }
    assert by_group[0] == ["a", "b"]  # the oldest list is group 0
    assert sorted([by_group[1], by_group[2]]) == [["c", "d"], ["d", "e"]]  # shown together
    times = log.group_times()
    assert times[0] < times[1] == times[2]
    # each of the two lists with a request id has one taken and one ignored item
    usable = log.usable_groups()
    assert len(usable) == 2 and 0 in usable
    # each row keeps its place in its list; the first of a repeated item stays
    places = {
        (str(data.item_ids[i]), int(g)): int(p)
        for i, g, p in zip(log.items, log.groups, log.positions, strict=True)
    }
    assert places[("a", 0)] == 0 and places[("b", 0)] == 1
    mine = int(log.groups[log.users == 0].max())  # u's later list: c, c, d
    assert places[("c", mine)] == 0 and places[("d", mine)] == 2


def test_tables_of_the_events_give_the_same_log() -> None:
    """`EventStore.scan_tables` pages (context as JSON) are read as the records are."""
    data = dataset()
    events = [
        *lists_of_all_kinds(),
        did("u", "d", "click", T0 + timedelta(minutes=61)),  # answers by the window
        Event(session_id="s", item_id="b", type="view", timestamp=T0),  # no person
    ]
    records = impression_log(events, data)
    table = events_to_table(events)
    tables = impression_log([table.slice(0, 5), table.slice(5)], data)
    assert len(records) == 6 and records.labels.sum() == 3
    for name in ("users", "items", "ts", "groups", "labels", "positions"):
        np.testing.assert_array_equal(getattr(tables, name), getattr(records, name), name)
    assert tables.devices.tolist() == records.devices.tolist()


def test_no_impressions_give_an_empty_log() -> None:
    data = dataset()
    log = impression_log([did("u", "a", "click", T0)], data)
    assert len(log) == 0 and log.n_groups == 0 and len(log.usable_groups()) == 0
    with pytest.raises(InvalidInput, match="window_s"):
        impression_log([], data, window_s=-1)


def test_the_dataset_keeps_its_log_until_it_is_split() -> None:
    data = dataset()
    log = impression_log([*shown("u", ["a", "b"], "r", T0)], data)
    with_log = data.with_impressions(log)
    assert with_log.impressions is log
    assert with_log.with_item_texts({"a": "text"}).impressions is log
    assert with_log.with_recency(30.0).impressions is log
    # a split's sides never carry impressions: newer ones would leak the test period
    assert with_log.subset(np.ones(len(data), bool)).impressions is None
    the_split = split(with_log, "leave-last-out")
    assert the_split.train.impressions is None and the_split.test.impressions is None
    assert with_log.with_impressions(None).impressions is None


def test_a_log_of_another_dataset_is_refused() -> None:
    data = dataset()
    bigger = Dataset.from_arrays(
        ["u", "v", "w"], [*ITEMS, "g"], users=np.array([2]), items=np.array([6])
    )
    log = impression_log([*shown("w", ["g"], "r", T0)], bigger)
    with pytest.raises(InvalidInput) as caught:
        data.with_impressions(log)
    assert caught.value.field == "impressions"
