"""The hybrid ranker learning from logged impressions and their outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import numpy as np
import pytest

from penchant.data import Dataset, ImpressionLog, Weighting, build_dataset, impression_log
from penchant.errors import InvalidInput
from penchant.ingest.world import World, WorldConfig
from penchant.models import Hybrid, load_model
from penchant.models.features import CONTEXT_FEATURES, context_values, feature_names
from penchant.models.ranker_rows import BOTH, HELD_OUT, listed_features, training_rows
from penchant.store import EventFilter, open_store
from penchant.testing.synthetic import planted_blocks

pytest.importorskip("lightgbm", reason="the hybrid ranker needs penchant[rank]")

SMALL = {"members": ("ials", "itemknn", "popular"), "candidates": 15, "trees": 30, "leaves": 7}
DAY = 86_400 * 1_000_000
TENANT = "default"


@pytest.fixture(scope="module")
def world_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    """A small simulated world's interactions with the log of its served lists, both read
    from a SQLite store as training reads them."""
    world = World.generate(WorldConfig(n_users=200, n_items=300, n_categories=6, days=10, seed=0))
    path = tmp_path_factory.mktemp("world") / "penchant.db"
    store = open_store(f"sqlite:///{path}")
    try:
        for table in world.events():
            store.events.append_table(TENANT, table)
        data = build_dataset(store.events.interactions(TENANT))
        rules = Weighting()
        pages = store.events.scan(TENANT, EventFilter(types=("impression", *rules.positive_types)))
        yield data.with_impressions(impression_log(chain.from_iterable(pages), data, rules))
    finally:
        store.close()


def test_served_lists_teach_the_ranker_and_their_context_counts(world_data: Dataset) -> None:
    log = world_data.impressions
    assert log is not None and len(log.usable_groups()) >= 200
    model = Hybrid(**SMALL, threads=1).fit(world_data)
    assert model.trained_on_ == BOTH
    # each list's time reaches the features: the hour column varied, so the ranker split on it
    assert model.feature_importance()["hour"] > 0
    held_out = Hybrid(**SMALL, threads=1).fit(world_data.with_impressions(None))
    assert held_out.trained_on_ == HELD_OUT
    assert all(held_out.feature_importance()[name] == 0 for name in CONTEXT_FEATURES)


def test_held_out_lists_carry_a_context_beside_served_lists(world_data: Dataset) -> None:
    """Beside served lists, held-out lists get a request context (the time of the person's
    first held-out pair, a device the served lists had), so a missing context cannot tell
    the ranker which kind a list is; alone, they carry none."""
    log = world_data.impressions
    assert log is not None
    columns = [-3, -2, -1]  # hour, weekday, device: the last features
    assert feature_names(list(SMALL["members"]), content=False)[-3:] == list(CONTEXT_FEATURES)
    blocks, _, groups = training_rows(Hybrid(**SMALL, threads=1), world_data)
    alone, _, alone_groups = training_rows(
        Hybrid(**SMALL, threads=1), world_data.with_impressions(None)
    )
    held = np.vstack(blocks[len(groups) - len(alone_groups) :])
    assert np.isfinite(held[:, columns]).all()
    codes = {context_values(0, d)[2] for d in set(log.devices)}
    assert set(np.unique(held[:, columns[2]])) <= codes
    assert len(np.unique(held[:, columns[0]])) > 1  # hours of different people's requests
    assert np.isnan(np.vstack(alone)[:, columns]).all()


def test_too_few_served_lists_train_as_without_them(world_data: Dataset) -> None:
    assert world_data.impressions is not None
    enough = len(world_data.impressions.usable_groups())
    model = Hybrid(**SMALL, threads=1, min_impression_groups=enough + 1).fit(world_data)
    assert model.trained_on_ == HELD_OUT
    without = Hybrid(**SMALL, threads=1).fit(world_data.with_impressions(None))
    users = [str(u) for u in world_data.user_ids[:40]]
    assert model.recommend(users, k=10)[0].tolist() == without.recommend(users, k=10)[0].tolist()


def test_how_it_trained_is_saved_with_the_model(world_data: Dataset, tmp_path: Path) -> None:
    model = Hybrid(**SMALL, threads=1).fit(world_data)
    model.save(tmp_path / "hybrid")
    loaded = load_model(tmp_path / "hybrid")
    assert isinstance(loaded, Hybrid) and loaded.trained_on_ == BOTH
    users = [str(u) for u in world_data.user_ids[:20]]
    assert loaded.recommend(users, k=5)[0].tolist() == model.recommend(users, k=5)[0].tolist()


def device_log(data: Dataset, rng: int = 0) -> ImpressionLog:
    """Four lists of six unseen items per person, a day after the data: on mobile they take
    the list's most popular item, on desktop its least popular one."""
    gen = np.random.default_rng(rng)
    start = int(data.first_ts.max()) + DAY
    popularity = data.item_counts
    users, items, ts, groups, devices, labels = [], [], [], [], [], []
    for user in range(data.n_users):
        unseen = np.setdiff1d(np.arange(data.n_items), data.matrix[user].indices)
        for n, device in enumerate(("mobile", "desktop", "mobile", "desktop")):
            shown = gen.choice(unseen, size=6, replace=False)
            rank = np.argsort(popularity[shown], kind="stable")
            taken = shown[rank[-1]] if device == "mobile" else shown[rank[0]]
            users += [user] * 6
            items += shown.tolist()
            ts += [start + (4 * user + n) * 60_000_000] * 6
            groups += [4 * user + n] * 6
            devices += [device] * 6
            labels += (shown == taken).astype(int).tolist()
    return ImpressionLog(
        users=np.array(users, np.int64),
        items=np.array(items, np.int64),
        ts=np.array(ts, np.int64),
        groups=np.array(groups, np.int64),
        devices=np.array(devices, dtype=object),
        labels=np.array(labels, np.int8),
        positions=np.tile(np.arange(6), len(users) // 6),
    )


def test_the_ranker_learns_what_people_take_on_each_device() -> None:
    data = planted_blocks(n_users=120, n_items=40, rng=1)
    log = device_log(data)
    params = {**SMALL, "label_fraction": 0.5, "threads": 1}
    model = Hybrid(**params).fit(data.with_impressions(log))
    assert model.trained_on_ == BOTH
    assert model.feature_importance()["device"] > 0
    plain = Hybrid(**params).fit(data)
    now = int(log.ts.max())
    popularity = data.item_counts
    mobile_first, desktop_first = [], []
    for user in range(0, data.n_users, 3):
        history = data.matrix[user]
        on_mobile, _ = model.rank_candidates(history, user=user, now_us=now, device="mobile")
        on_desktop, _ = model.rank_candidates(history, user=user, now_us=now, device="desktop")
        mobile_first.append(popularity[on_mobile[0]])
        desktop_first.append(popularity[on_desktop[0]])
        # trained without impressions, the ranker never saw a device: it ignores it
        same = [
            plain.rank_candidates(history, user=user, now_us=now, device=d)[0]
            for d in ("mobile", "desktop")
        ]
        assert same[0].tolist() == same[1].tolist()
    assert np.mean(np.greater(mobile_first, desktop_first)) > 0.8


def test_served_list_features_are_the_serving_features() -> None:
    """Training rows of an impressed item equal what serving computes for the same item."""
    data = planted_blocks(n_users=120, n_items=40, rng=1)
    model = Hybrid(**SMALL, threads=1).fit(data)
    users = np.array([0, 5, 12], dtype=np.int64)
    history = data.matrix[users]
    now = int(data.last_ts.max()) + DAY
    context = context_values(now, "tablet")
    served = model._candidates(users, history, now_us=now, context=context)
    lists = [(row, cands[:7], now, context) for row, (cands, _) in enumerate(served)]
    for (kept, feats), (_, serving) in zip(
        listed_features(model, users, history, lists), served, strict=True
    ):
        assert kept.all()
        np.testing.assert_array_equal(feats, serving[:7])
    # an item the person already has is not proposable, so it is left out of its list
    seen = int(history[0].indices[0])
    (kept, feats), *_ = listed_features(
        model, users, history, [(0, np.array([seen, *served[0][0][:2]]), now, context)]
    )
    assert kept.tolist() == [False, True, True] and len(feats) == 2


def test_min_impression_groups_must_be_positive() -> None:
    with pytest.raises(InvalidInput) as caught:
        Hybrid(**SMALL, min_impression_groups=0).fit(planted_blocks())
    assert caught.value.field == "min_impression_groups"
    assert Hybrid().wants_impressions()


def test_served_lists_add_to_the_held_out_lists(world_data: Dataset) -> None:
    """Both kinds of labelled lists reach the ranker; with no held-out pair to learn from,
    the served lists alone do."""
    both = Hybrid(**SMALL, threads=1)
    blocks, targets, groups = training_rows(both, world_data)
    held = Hybrid(**SMALL, threads=1)
    held_groups = training_rows(held, world_data.with_impressions(None))[2]
    assert both.trained_on_ == BOTH and held.trained_on_ == HELD_OUT
    assert len(groups) > len(held_groups) and groups[-len(held_groups) :] == held_groups
    assert [len(t) for t in targets] == groups == [len(b) for b in blocks]
    # every served list keeps a taken and an ignored item
    served = targets[: len(groups) - len(held_groups)]
    assert all(0 < t.sum() < len(t) for t in served)

    # one pair per person: nothing to hold out, so only the served lists teach the ranker
    first = np.unique(world_data.users, return_index=True)[1]
    single = np.zeros(len(world_data), dtype=bool)
    single[first] = True
    sparse = world_data.subset(single).with_impressions(world_data.impressions)
    with pytest.raises(InvalidInput):
        Hybrid(**SMALL, threads=1).fit(sparse.with_impressions(None))
    alone = Hybrid(**SMALL, threads=1).fit(sparse)
    assert alone.trained_on_ == "impressions"
