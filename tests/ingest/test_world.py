"""The simulated world: determinism, schema, funnel, linkage and the planted ground truth."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.errors import InvalidInput, NotFound
from penchant.ingest.world import World, WorldConfig
from penchant.schema import Event, EventContext, Item, User
from penchant.schema.common import from_micros
from penchant.store.base import EVENT_TABLE_SCHEMA
from penchant.types import BUILTIN_EVENT_TYPES, Purpose

SMALL = WorldConfig(n_users=150, n_items=300, n_categories=6, days=5, seed=3)
MEDIUM = WorldConfig(n_users=400, n_items=1_000, days=14, seed=11)


def _all(world: World, batch_size: int = 50_000) -> pa.Table:
    tables = [EVENT_TABLE_SCHEMA.empty_table(), *world.events(batch_size=batch_size)]
    return pa.concat_tables(tables).combine_chunks()


@pytest.fixture(scope="module")
def small() -> World:
    return World.generate(SMALL)


@pytest.fixture(scope="module")
def small_events(small: World) -> pa.Table:
    return _all(small)


@pytest.fixture(scope="module")
def medium_events() -> tuple[World, pa.Table]:
    world = World.generate(MEDIUM)
    return world, _all(world)


def _of_type(table: pa.Table, name: str) -> pa.Table:
    return table.filter(pc.equal(table["type"], name))


def _contexts(table: pa.Table) -> list[dict[str, Any]]:
    return [json.loads(c) for c in table["context"].to_pylist()]


# -- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_events(small_events: pa.Table) -> None:
    assert _all(World.generate(SMALL)).equals(small_events)


def test_different_seed_gives_different_events(small_events: pa.Table) -> None:
    other = _all(World.generate(SMALL.model_copy(update={"seed": 4})))
    assert not other.equals(small_events)


def test_batch_size_does_not_change_the_events(small: World, small_events: pa.Table) -> None:
    batches = list(small.events(batch_size=997))
    assert all(b.num_rows == 997 for b in batches[:-1]) and 0 < batches[-1].num_rows <= 997
    assert pa.concat_tables(batches).combine_chunks().equals(small_events)


# -- schema and order -------------------------------------------------------------------------


def test_events_have_the_store_schema_and_are_chronological(small_events: pa.Table) -> None:
    assert small_events.schema.equals(EVENT_TABLE_SCHEMA)
    ts = small_events["ts"].to_numpy()
    assert len(ts) > 1_000 and np.all(np.diff(ts) >= 0)
    assert pc.count_distinct(small_events["event_id"]).as_py() == small_events.num_rows


def test_event_types_are_all_built_in(small_events: pa.Table) -> None:
    types = set(pc.unique(small_events["type"]).to_pylist())
    assert types <= set(BUILTIN_EVENT_TYPES)
    assert {"impression", "click", "view", "dwell", "add_to_cart", "purchase"} <= types


def test_rows_validate_as_events(small_events: pa.Table) -> None:
    for row in small_events.slice(0, 3_000).to_pylist():
        ts, context = row.pop("ts"), json.loads(row["context"])
        Event.model_validate({**row, "timestamp": from_micros(ts), "context": context})


def test_anonymous_sessions_have_a_session_but_no_user(small_events: pa.Table) -> None:
    anonymous = small_events.filter(pc.is_null(small_events["user_id"]))
    assert 0.02 < anonymous.num_rows / small_events.num_rows < 0.3
    assert anonymous["session_id"].null_count == 0


def test_items_are_shown_only_while_live(small: World, small_events: pa.Table) -> None:
    shown = _of_type(small_events, "impression")
    items = {item.id: item for item in small.items()}
    for item_id, ts in zip(shown["item_id"].to_pylist(), shown["ts"].to_pylist(), strict=True):
        item, when = items[item_id], from_micros(ts)
        assert item.published_at is not None and item.published_at <= when
        assert item.expires_at is None or when < item.expires_at


@settings(max_examples=20, deadline=None)
@given(
    n_users=st.integers(1, 25),
    n_items=st.integers(1, 40),
    days=st.integers(1, 3),
    list_size=st.integers(1, 12),
    seed=st.integers(0, 2**32),
)
def test_any_small_world_is_ordered_and_well_formed(
    n_users: int, n_items: int, days: int, list_size: int, seed: int
) -> None:
    config = WorldConfig(
        n_users=n_users, n_items=n_items, days=days, list_size=list_size, seed=seed
    )
    events = _all(World.generate(config), batch_size=100)
    assert events.schema.equals(EVENT_TABLE_SCHEMA)
    assert np.all(np.diff(events["ts"].to_numpy()) >= 0)
    assert set(pc.unique(events["type"]).to_pylist()) <= set(BUILTIN_EVENT_TYPES)
    assert pc.count_distinct(events["event_id"]).as_py() == events.num_rows
    shown = _of_type(events, "impression")
    assert pc.count_distinct(shown["context"]).as_py() == shown.num_rows  # one row per slot


# -- funnel and linkage -----------------------------------------------------------------------


def test_a_purchase_follows_a_click_and_a_cart_of_the_same_item(small_events: pa.Table) -> None:
    earlier: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    purchases = 0
    for row in small_events.to_pylist():
        key = (row["session_id"], row["item_id"], json.loads(row["context"])["request_id"])
        if row["type"] == "purchase":
            purchases += 1
            assert earlier[key]["click"] < earlier[key]["add_to_cart"] < row["ts"]
            assert row["value"] is not None and row["value"] > 0
        earlier[key].setdefault(row["type"], row["ts"])
    assert purchases > 0


def test_outcomes_link_back_to_the_impression_they_answer(small_events: pa.Table) -> None:
    impressions = _of_type(small_events, "impression")
    slots = {
        (c["request_id"], c["position"]): (item, ts)
        for c, item, ts in zip(
            _contexts(impressions),
            impressions["item_id"].to_pylist(),
            impressions["ts"].to_pylist(),
            strict=True,
        )
    }
    outcomes = small_events.filter(pc.not_equal(small_events["type"], "impression"))
    assert outcomes.num_rows > 0
    for c, item, ts in zip(
        _contexts(outcomes),
        outcomes["item_id"].to_pylist(),
        outcomes["ts"].to_pylist(),
        strict=True,
    ):
        shown_item, shown_at = slots[(c["request_id"], c["position"])]
        assert shown_item == item and shown_at < ts
        assert c["surface"] and c["device"]


# -- the ground truth -------------------------------------------------------------------------


def test_popular_items_get_a_disproportionate_share_of_clicks(
    medium_events: tuple[World, pa.Table],
) -> None:
    _, events = medium_events
    counts = [
        v["counts"] for v in pc.value_counts(_of_type(events, "click")["item_id"]).to_pylist()
    ]
    ranked = np.sort(np.array(counts + [0] * (MEDIUM.n_items - len(counts))))[::-1]
    top = ranked[: MEDIUM.n_items // 10].sum() / ranked.sum()
    assert top > 0.4  # uniform clicks would give 0.1


def _planted(world: World, category: str) -> tuple[World, list[str], list[str]]:
    planted = world.with_user("planted", {category: 1.0})
    items = world.items()
    inside = [item.id for item in items if item.categories[0] == category]
    outside = [item.id for item in items if category not in item.categories]
    return planted, inside, outside


def test_a_planted_user_prefers_their_category(small: World) -> None:
    category = small.items()[0].categories[0]
    planted, inside, outside = _planted(small, category)
    affinity = planted.true_affinity(["planted"], inside + outside)[0]
    assert affinity[: len(inside)].mean() > affinity[len(inside) :].mean() + 1.0
    p_in = planted.click_probability("planted", inside, positions=[0] * len(inside))
    p_out = planted.click_probability("planted", outside, positions=[0] * len(outside))
    assert p_in.mean() > 2.5 * p_out.mean()


def test_a_planted_user_clicks_their_category_much_more(small: World) -> None:
    category = small.items()[0].categories[0]
    planted, inside, outside = _planted(small, category)
    rng = np.random.default_rng(0)

    def clicks(pool: list[str]) -> int:
        total = 0
        for _ in range(200):
            shown = list(rng.choice(pool, size=min(10, len(pool)), replace=False))
            reactions = planted.respond("planted", shown, rng)
            total += len(_of_type(reactions, "click"))
        return total

    assert clicks(inside) > 2 * clicks(outside)


def test_dwell_and_ratings_rise_with_affinity(
    medium_events: tuple[World, pa.Table],
) -> None:
    world, events = medium_events
    for kind in ("dwell", "rating"):
        rows = _of_type(events, kind).filter(pc.is_valid(_of_type(events, kind)["user_id"]))
        users, items = rows["user_id"].to_pylist(), rows["item_id"].to_pylist()
        u_index = {u: i for i, u in enumerate(dict.fromkeys(users))}
        i_index = {t: i for i, t in enumerate(dict.fromkeys(items))}
        matrix = world.true_affinity(list(u_index), list(i_index))
        affinity = matrix[[u_index[u] for u in users], [i_index[i] for i in items]]
        value = rows["value"].to_numpy()
        high = affinity > np.median(affinity)
        assert value[high].mean() > value[~high].mean(), kind


def test_position_lowers_the_click_probability(small: World) -> None:
    item = small.items()[5].id
    p = small.click_probability("u000001", [item] * 10, positions=range(10))
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) < 0)


@settings(max_examples=30, deadline=None)
@given(
    user=st.integers(0, SMALL.n_users - 1),
    items=st.lists(st.integers(0, SMALL.n_items - 1), min_size=1, max_size=20),
    surface=st.sampled_from(["home", "category", "item_page", "search", "elsewhere"]),
    device=st.sampled_from(["mobile", "desktop", "tablet", None]),
)
def test_click_probability_is_a_probability(
    small: World, user: int, items: list[int], surface: str, device: str | None
) -> None:
    context = EventContext(surface=surface, device=device)
    p = small.click_probability(f"u{user:06d}", [f"i{i:06d}" for i in items], context=context)
    assert p.shape == (len(items),) and np.all((p > 0) & (p < 1))


def test_respond_is_deterministic_and_links_to_the_request(small: World) -> None:
    shown = [item.id for item in small.items()[:20]]
    context = EventContext(request_id="req-1", surface="home", device="mobile")
    first = small.respond("u000002", shown, np.random.default_rng(9), context)
    again = small.respond("u000002", shown, np.random.default_rng(9), context)
    assert first.equals(again) and first.schema.equals(EVENT_TABLE_SCHEMA)
    many = pa.concat_tables(
        small.respond("u000002", shown, np.random.default_rng(s), context) for s in range(50)
    )
    assert len(_of_type(many, "click")) > 0
    for c, item in zip(_contexts(many), many["item_id"].to_pylist(), strict=True):
        assert c["request_id"] == "req-1" and shown[c["position"]] == item


def test_unknown_ids_are_not_found(small: World) -> None:
    with pytest.raises(NotFound):
        small.respond("nobody", ["i000001"], np.random.default_rng(0))
    with pytest.raises(NotFound):
        small.true_affinity(["u000001"], ["no-such-item"])
    with pytest.raises(InvalidInput):
        small.with_user("u000001", {small.items()[0].categories[0]: 1.0})
    with pytest.raises(InvalidInput):
        small.with_user("someone", {"no-such-category": 1.0})


def test_save_and_load_give_the_same_world(small: World, tmp_path: Path) -> None:
    small.save(tmp_path / "world")
    loaded = World.load(tmp_path / "world")
    assert loaded.config == small.config
    shown = [item.id for item in small.items()[10:30]]
    for seed in range(5):
        a = small.respond("u000007", shown, np.random.default_rng(seed))
        b = loaded.respond("u000007", shown, np.random.default_rng(seed))
        assert a.equals(b)
    assert next(loaded.events()).equals(next(small.events()))
    assert loaded.items() == small.items() and loaded.users() == small.users()


# -- catalogue and users ----------------------------------------------------------------------


def test_items_validate_and_share_words_within_a_category(small: World) -> None:
    items = small.items()
    assert len(items) == SMALL.n_items
    for item in items[:50]:
        assert Item.model_validate(item.model_dump()) == item
        assert 1 <= len(item.categories) <= 3 and item.title and item.text and item.provider
        assert isinstance(item.attributes["price"], float) and item.attributes["price"] > 0
    words = [set(f"{i.title} {i.text}".lower().replace(".", "").split()) for i in items]
    primary = [i.categories[0] for i in items]

    def overlap(same: bool) -> float:
        scores = [
            len(words[a] & words[b]) / len(words[a] | words[b])
            for a in range(60)
            for b in range(a + 1, 60)
            if (primary[a] == primary[b]) == same
        ]
        return float(np.mean(scores))

    assert overlap(same=True) > 2 * overlap(same=False)
    published = [i.published_at for i in items if i.published_at is not None]
    assert any(p >= SMALL.start for p in published) and any(p < SMALL.start for p in published)


def test_users_validate_with_attributes_and_consent(small: World) -> None:
    users = small.users()
    assert len(users) == SMALL.n_users
    for user in users[:50]:
        assert User.model_validate(user.model_dump()) == user
        assert {"age_band", "country", "signup_date"} <= set(user.attributes)

    def granted(purpose: Purpose) -> float:
        return float(np.mean([u.consent[purpose].granted for u in users]))

    assert granted(Purpose.PERSONALIZATION) > 0.75
    assert granted(Purpose.ADVERTISING) < granted(Purpose.ANALYTICS)


def test_summary_counts_match_the_events(small: World, small_events: pa.Table) -> None:
    summary = small.summary()
    by_type = summary["by_type"]
    assert isinstance(by_type, dict)
    assert summary["events"] == small_events.num_rows == sum(by_type.values())
    assert by_type["impression"] > by_type["click"] > by_type["purchase"] > 0
    assert summary["users"] == SMALL.n_users and summary["items"] == SMALL.n_items
