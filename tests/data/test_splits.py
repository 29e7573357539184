"""Splits: Hypothesis properties of every protocol over random datasets, and known answers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.data import PROTOCOLS, Dataset, Split, build_dataset, split
from penchant.data.splits import (
    cold_start_split,
    holdout_split,
    leave_last_out,
    strong_split,
    temporal_split,
)
from penchant.errors import InvalidInput
from penchant.ingest.bulk import read_events
from penchant.ingest.formats import get_preset
from penchant.schema import EventVocabulary
from shared_data import need_dataset

Pair = tuple[int, int]
SECOND = 1_000_000


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    """1..30 users, 1..40 items, random distinct pairs with random (often tied) times.

    Hypothesis draws the sizes, the density and the number of distinct times; a seeded
    generator fills in the pairs, so that datasets are not all tiny.
    """
    n_users = draw(st.integers(1, 30))
    n_items = draw(st.integers(1, 40))
    density = draw(st.floats(0.05, 0.6))
    n_times = draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    order = rng.permutation(len(users))  # storage order is not sorted by user
    users, items = users[order], items[order]
    first = rng.integers(0, n_times, len(users)) * SECOND
    return Dataset.from_arrays(
        user_ids=[f"u{k}" for k in range(n_users)],
        item_ids=[f"i{k}" for k in range(n_items)],
        users=users,
        items=items,
        weights=rng.uniform(0.25, 8.0, len(users)),
        first_ts=first,
        last_ts=first + rng.integers(0, 5, len(users)) * SECOND,
    )


fractions = st.floats(0.05, 0.95)
seeds = st.integers(0, 2**32 - 1)


def rows(data: Dataset) -> set[tuple[int, int, float, int, int]]:
    """Each pair with all it carries, to check that subsets copy rows whole."""
    return set(
        zip(
            data.users.tolist(),
            data.items.tolist(),
            data.weights.tolist(),
            data.first_ts.tolist(),
            data.last_ts.tolist(),
            strict=True,
        )
    )


def pair_set(data: Dataset) -> set[Pair]:
    return set(zip(data.users.tolist(), data.items.tolist(), strict=True))


def by_user(data: Dataset) -> dict[int, list[int]]:
    """Row indices of each user's pairs, in storage order."""
    out: dict[int, list[int]] = defaultdict(list)
    for index, user in enumerate(data.users.tolist()):
        out[user].append(index)
    return out


def check_common(data: Dataset, result: Split) -> None:
    """What every protocol promises: disjoint parts of the data, judged users with a history."""
    parts = [result.train, result.test] + ([result.fold_in] if result.fold_in else [])
    for part in parts:
        assert part.user_ids is data.user_ids and part.item_ids is data.item_ids
        assert len(pair_set(part)) == len(part)  # no pair twice
    train, test = rows(result.train), rows(result.test)
    fold_in = rows(result.fold_in) if result.fold_in else set()
    assert train | test | fold_in <= rows(data)
    assert not train & test and not train & fold_in and not test & fold_in
    history = result.history
    assert history is (result.fold_in if result.protocol == "strong" else result.train)
    assert set(result.test.users.tolist()) <= set(history.users.tolist())
    assert not pair_set(result.test) & pair_set(history)
    assert len(result.train) > 0 and len(result.test) > 0

    info = result.info
    assert info["train_pairs"] == len(result.train)
    assert info["test_pairs"] == len(result.test)
    assert info["test_users"] == len(set(result.test.users.tolist()))
    unseen = set(result.test.items.tolist()) - set(result.train.items.tolist())
    assert info["test_items_unseen_in_train"] == len(unseen)


# -- temporal ------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(data=datasets(), fraction=fractions)
def test_temporal(data: Dataset, fraction: float) -> None:
    ts = data.first_ts.tolist()
    n_test = max(1, round(len(ts) * fraction))
    cutoff = sorted(ts, reverse=True)[n_test - 1] if ts else 0
    before = {i for i, t in enumerate(ts) if t < cutoff}
    has_train = {data.users[i] for i in before}
    judged = [i for i, t in enumerate(ts) if t >= cutoff and data.users[i] in has_train]

    if len(ts) < 2 or not before or not judged:
        with pytest.raises(InvalidInput, match="temporal"):
            split(data, "temporal", test_fraction=fraction)
        return
    result = split(data, "temporal", test_fraction=fraction)

    check_common(data, result)
    assert result.info["cutoff_us"] == cutoff
    assert result.test.first_ts.min() >= cutoff > result.train.first_ts.max()
    at_or_after = sum(t >= cutoff for t in ts)
    assert sum(t > cutoff for t in ts) < n_test <= at_or_after  # the newest fraction, with ties
    assert len(result.train) == len(before)  # every earlier pair trains
    assert sorted(judged) == sorted(
        i
        for i, p in enumerate(zip(data.users, data.items, strict=True))
        if p in pair_set(result.test)
    )
    assert result.info["dropped_test_pairs_no_history"] == at_or_after - len(judged)


def test_temporal_known_answer() -> None:
    data = Dataset.from_arrays(
        ["a", "b", "c"],
        ["x", "y", "z"],
        users=np.array([0, 0, 0, 1, 1, 2, 2]),
        items=np.array([0, 1, 2, 0, 2, 1, 2]),
        first_ts=np.array([1, 2, 8, 3, 9, 8, 9]) * SECOND,
    )

    result = temporal_split(data, test_fraction=0.3)  # 2 of 7: the cut-off is at 9 s

    assert result.info["cutoff_us"] == 9 * SECOND
    assert pair_set(result.train) == {(0, 0), (0, 1), (0, 2), (1, 0), (2, 1)}
    assert pair_set(result.test) == {(1, 2), (2, 2)}
    assert result.info["dropped_test_pairs_no_history"] == 0


def test_temporal_drops_test_users_without_history() -> None:
    data = Dataset.from_arrays(
        ["old", "new"],
        ["x", "y"],
        users=np.array([0, 0, 1, 1]),
        items=np.array([0, 1, 0, 1]),
        first_ts=np.array([1, 5, 6, 7]) * SECOND,
    )

    result = temporal_split(data, test_fraction=0.75)

    assert pair_set(result.test) == {(0, 1)}
    assert result.info["dropped_test_pairs_no_history"] == 2
    assert pair_set(result.train) == {(0, 0)}


def test_temporal_needs_two_times() -> None:
    one = Dataset.from_arrays(["a"], ["x"], np.array([0]), np.array([0]))
    tied = Dataset.from_arrays(["a"], ["x", "y"], np.array([0, 0]), np.array([0, 1]))

    with pytest.raises(InvalidInput, match="at least 2"):
        split(one, "temporal")
    with pytest.raises(InvalidInput, match="same time"):
        split(tied, "temporal")


# -- leave-last-out ------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(data=datasets())
def test_leave_last_out(data: Dataset) -> None:
    expected = set()
    for indices in by_user(data).values():
        if len(indices) >= 2:  # the newest; a tie goes to the pair stored last
            newest = max(indices, key=lambda i: (data.first_ts[i], i))
            expected.add((int(data.users[newest]), int(data.items[newest])))

    if not expected:
        with pytest.raises(InvalidInput, match="leave-last-out"):
            split(data, "leave-last-out")
        return
    result = split(data, "leave-last-out")

    check_common(data, result)
    assert pair_set(result.test) == expected
    assert pair_set(result.train) == pair_set(data) - expected
    assert len(result.test) == len(set(result.test.users.tolist()))  # one per user
    assert result.info["dropped_test_pairs_no_history"] == 0


def test_leave_last_out_ties_go_to_the_pair_stored_last() -> None:
    data = Dataset.from_arrays(
        ["a", "b", "solo"],
        ["x", "y", "z"],
        users=np.array([0, 1, 0, 0, 1, 2]),
        items=np.array([2, 0, 0, 1, 1, 2]),
        first_ts=np.array([5, 3, 5, 1, 3, 9]) * SECOND,
    )

    result = leave_last_out(data)

    assert pair_set(result.test) == {(0, 0), (1, 1)}  # a: x (stored after z), b: y
    assert (2, 2) in pair_set(result.train)  # a single pair only trains
    assert pair_set(leave_last_out(data).test) == pair_set(result.test)


# -- holdout -------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(data=datasets(), fraction=fractions, seed=seeds)
def test_holdout(data: Dataset, fraction: float, seed: int) -> None:
    users = by_user(data)

    if not any(len(indices) >= 2 for indices in users.values()):
        with pytest.raises(InvalidInput, match="holdout"):
            split(data, "holdout", test_fraction=fraction, rng=seed)
        return
    result = split(data, "holdout", test_fraction=fraction, rng=seed)

    check_common(data, result)
    assert rows(result.train) | rows(result.test) == rows(data)  # nothing dropped
    tested = np.bincount(result.test.users, minlength=data.n_users)
    for user, indices in users.items():
        n = len(indices)
        want = 0 if n < 2 else min(max(round(n * fraction), 1), n - 1)
        assert tested[user] == want
    again = split(data, "holdout", test_fraction=fraction, rng=seed)
    assert pair_set(again.test) == pair_set(result.test)


def test_holdout_depends_on_the_seed_only() -> None:
    rng = np.random.default_rng(0)
    n_users, per_user = 20, 10
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(50, per_user, replace=False) for _ in range(n_users)])
    data = Dataset.from_arrays(
        [f"u{k}" for k in range(n_users)], [f"i{k}" for k in range(50)], users, items
    )

    first = split(data, "holdout", test_fraction=0.3, rng=1)
    again = split(data, "holdout", test_fraction=0.3, rng=np.random.default_rng(1))
    direct = holdout_split(data, 0.3, np.random.default_rng(1))
    other = split(data, "holdout", test_fraction=0.3, rng=2)

    assert pair_set(first.test) == pair_set(again.test) == pair_set(direct.test)
    assert pair_set(first.test) != pair_set(other.test)
    assert len(first.test) == len(other.test) == n_users * 3


# -- strong --------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(data=datasets(), fraction=fractions, held=st.floats(0.05, 0.95), seed=seeds)
def test_strong(data: Dataset, fraction: float, held: float, seed: int) -> None:
    users = by_user(data)
    eligible = [u for u, indices in users.items() if len(indices) >= 2]
    n_held = round(data.n_users * held)

    if len(eligible) < 2 or n_held < 1:
        with pytest.raises(InvalidInput, match="strong"):
            split(data, "strong", test_fraction=fraction, test_users=held, rng=seed)
        return
    result = split(data, "strong", test_fraction=fraction, test_users=held, rng=seed)

    check_common(data, result)
    assert result.fold_in is not None
    held_users = set(result.test.users.tolist())
    assert held_users == set(result.fold_in.users.tolist())  # every held-out user is judged
    assert len(held_users) == result.info["held_out_users"] == min(n_held, len(eligible) - 1)
    assert held_users <= set(eligible)
    assert not held_users & set(result.train.users.tolist())  # never seen in training
    of_held = {r for r in rows(data) if r[0] in held_users}
    assert rows(result.fold_in) | rows(result.test) == of_held
    assert rows(result.train) == rows(data) - of_held
    tested = np.bincount(result.test.users, minlength=data.n_users)
    for user in held_users:
        n = len(users[user])
        assert tested[user] == min(max(round(n * fraction), 1), n - 1)
    assert result.info["dropped_test_pairs_no_history"] == 0


def test_strong_direct_call_matches_split() -> None:
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(30), 6)
    items = np.concatenate([rng.choice(40, 6, replace=False) for _ in range(30)])
    data = Dataset.from_arrays(
        [f"u{k}" for k in range(30)], [f"i{k}" for k in range(40)], users, items
    )

    via_split = split(data, "strong", test_fraction=0.5, test_users=0.2, rng=9)
    direct = strong_split(data, 0.2, 0.5, np.random.default_rng(9))

    assert pair_set(via_split.test) == pair_set(direct.test)
    assert via_split.fold_in is not None and direct.fold_in is not None
    assert pair_set(via_split.fold_in) == pair_set(direct.fold_in)
    assert via_split.info["held_out_users"] == 6 and len(via_split.test) == 6 * 3


# -- errors --------------------------------------------------------------------------------------
def small() -> Dataset:
    return Dataset.from_arrays(
        ["a", "b", "c"],
        ["x", "y", "z"],
        users=np.array([0, 0, 1, 1, 2, 2]),
        items=np.array([0, 1, 1, 2, 0, 2]),
        first_ts=np.arange(6) * SECOND,
    )


# -- cold-start -------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(data=datasets(), fraction=st.floats(0.05, 0.5), seed=seeds)
def test_cold_start(data: Dataset, fraction: float, seed: int) -> None:
    seen = sorted(set(data.items.tolist()))
    n_cold = round(len(seen) * fraction)
    if n_cold < 1 or n_cold >= len(seen):
        with pytest.raises(InvalidInput, match="cold-start"):
            split(data, "cold-start", test_fraction=fraction, rng=seed)
        return
    try:
        result = split(data, "cold-start", test_fraction=fraction, rng=seed)
    except InvalidInput as exc:  # every cold pair's user had only cold items
        assert "leaves nothing" in str(exc)
        return
    check_common(data, result)
    assert result.candidates is not None
    cold = set(result.candidates.tolist())
    assert len(cold) == n_cold == result.info["cold_items"] and cold <= set(seen)
    assert not cold & set(result.train.items.tolist())  # no cold item trains
    assert set(result.test.items.tolist()) <= cold  # and only cold items test
    trained = set(result.train.users.tolist())
    expected = {(u, i) for u, i in pair_set(data) if i in cold and u in trained}
    assert pair_set(result.test) == expected  # every judgeable pair of a cold item
    again = split(data, "cold-start", test_fraction=fraction, rng=seed)
    assert np.array_equal(again.candidates, result.candidates)


def test_cold_start_known_answer() -> None:
    """Four items, one held out: its pairs test (of users with other items), the rest train."""
    data = Dataset.from_arrays(
        ["a", "b", "c"],
        ["w", "x", "y", "z"],
        users=np.array([0, 0, 1, 1, 2]),
        items=np.array([0, 1, 1, 2, 3]),
    )
    result = cold_start_split(data, 0.25, np.random.default_rng(1))  # seed 1 draws x
    assert result.candidates is not None and result.candidates.tolist() == [1]
    assert pair_set(result.test) == {(0, 1), (1, 1)}
    assert pair_set(result.train) == {(0, 0), (1, 2), (2, 3)}
    assert result.with_recency(30.0).candidates is result.candidates
    with pytest.raises(InvalidInput, match="nothing to test"):  # seed 0 draws z: c took
        cold_start_split(data, 0.25, np.random.default_rng(0))  # only z, so no history


def test_protocols_are_the_five_documented() -> None:
    assert PROTOCOLS == ("temporal", "leave-last-out", "holdout", "strong", "cold-start")
    for protocol in PROTOCOLS:
        assert split(small(), protocol, test_users=0.34).protocol == protocol


def test_an_unknown_protocol_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="unknown protocol 'random'"):
        split(small(), "random")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_test_fraction_outside_zero_one(protocol: str, fraction: float) -> None:
    with pytest.raises(InvalidInput, match="test_fraction"):
        split(small(), protocol, test_fraction=fraction)


@pytest.mark.parametrize("share", [0.0, 1.0, -1.0, 2.0, float("nan")])
def test_test_users_outside_zero_one(share: float) -> None:
    with pytest.raises(InvalidInput, match="test_users"):
        split(small(), "strong", test_users=share)


@pytest.mark.parametrize("protocol", ["leave-last-out", "holdout", "strong"])
def test_users_with_single_items_leave_nothing_to_test(protocol: str) -> None:
    data = Dataset.from_arrays(["a", "b"], ["x", "y"], np.array([0, 1]), np.array([0, 1]))

    with pytest.raises(InvalidInput, match=protocol):
        split(data, protocol, test_users=0.5)


def test_strong_needs_two_eligible_users() -> None:
    data = Dataset.from_arrays(["a", "b"], ["x", "y"], np.array([0, 0, 1]), np.array([0, 1, 0]))

    with pytest.raises(InvalidInput, match="too few users"):
        split(data, "strong", test_users=0.5)


# -- the real MovieLens 100K (in ../shared/datasets, not in the repository) ---------------------
def test_movielens_100k_splits(tmp_path: Path) -> None:
    folder = need_dataset("movielens-100k")
    spec = get_preset("movielens-100k").events
    tables = read_events(
        folder / "u.data", spec, vocabulary=EventVocabulary(), rejects=tmp_path / "r.jsonl"
    )
    data = build_dataset(tables)

    last = split(data, "leave-last-out")
    strong = split(data, "strong", test_users=0.1, test_fraction=0.2, rng=0)

    check_common(data, last)
    assert (len(last.test), len(last.train)) == (943, 99_057)  # everyone rated 20 or more
    check_common(data, strong)
    assert strong.info["held_out_users"] == strong.info["test_users"] == 94
