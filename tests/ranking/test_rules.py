"""Business rules (boost, bury, pin, block), per surface and per request, and re-rankers."""

from __future__ import annotations

from typing import Any

import pytest
from ranking_world import NOW, catalog_items

from penchant.errors import ConfigError
from penchant.models.base import Recommender
from penchant.ranking import Engine, RankingRequest
from penchant.ranking.pipeline import DEFAULT_STAGES, build_pipeline


def ask(**fields: Any) -> RankingRequest:
    return RankingRequest.model_validate({"k": 6, "context": {"time": NOW}, **fields})


def test_block_removes_matching_items(engine: Engine) -> None:
    base = engine.recommend(ask(user_id="u0")).item_ids
    rule = {"action": "block", "match": {"item_ids": base[:2]}}
    ranked = engine.recommend(ask(user_id="u0", rules=[rule])).item_ids
    assert not set(base[:2]) & set(ranked)
    assert ranked[:4] == base[2:6]


def test_pin_places_an_item_at_its_position_even_if_no_source_proposed_it(
    engine: Engine,
) -> None:
    # i1 is of the other taste group: no source ranks it for u0 near the top
    rule = {"action": "pin", "match": {"item_ids": ["i1"]}, "position": 2, "reason": "sponsored"}
    ranked = engine.recommend(ask(user_id="u0", rules=[rule]))
    assert ranked.item_ids[1] == "i1" and ranked.reasons[1] == "sponsored"
    assert len(ranked.item_ids) == 6


def test_a_pin_respects_the_filters(engine: Engine) -> None:
    rule = {"action": "pin", "match": {"item_ids": ["i2"]}, "position": 1}  # out of stock
    ranked = engine.recommend(ask(user_id="u0", rules=[rule]))
    assert "i2" not in ranked.item_ids


def test_boost_lifts_and_bury_sinks(engine: Engine) -> None:
    base = engine.recommend(ask(user_id="u0", k=10)).item_ids
    last = base[-1]
    boosted = engine.recommend(
        ask(
            user_id="u0",
            k=10,
            rules=[{"action": "boost", "match": {"item_ids": [last]}, "factor": 100.0}],
        )
    ).item_ids
    assert boosted[0] == last
    first = base[0]
    buried = engine.recommend(
        ask(user_id="u0", k=40, rules=[{"action": "bury", "match": {"item_ids": [first]}}])
    ).item_ids
    assert buried[-1] == first


def test_surface_rules_and_filters_come_from_config(models: dict[str, Recommender]) -> None:
    stages = [dict(s) for s in DEFAULT_STAGES]
    stages[stages.index({"stage": "filter"})] = {"stage": "filter", "categories": ["odd"]}
    stages[stages.index({"stage": "rules"})] = {
        "stage": "rules",
        "rules": [{"action": "block", "match": {"providers": ["p3"]}}],
    }
    engine = Engine("v1", models, catalog_items(), {"shop": stages})
    ranked = engine.recommend(ask(user_id="u1", surface="shop", k=10))
    assert ranked.pipeline == "shop"
    assert ranked.item_ids
    assert all(
        i == "new1" or (int(i[1:]) % 2 == 1 and int(i[1:]) % 4 != 3) for i in ranked.item_ids
    )
    # the default surface is untouched
    assert engine.recommend(ask(user_id="u1", k=10)).pipeline == "default"


def test_diversity_mixes_categories(models: dict[str, Recommender]) -> None:
    stages = [s for s in DEFAULT_STAGES if s["stage"] != "diversity"]
    plain = Engine("v1", models, catalog_items(), {"plain": stages})
    mixed = Engine(
        "v1", models, catalog_items(),
        {"mixed": [*stages[:-1], {"stage": "diversity", "strength": 5.0}, stages[-1]]},
    )  # fmt: skip
    request = {"user_id": "u0", "k": 6, "filters": {"exclude_seen": False}}
    a = plain.recommend(ask(**request, surface="plain")).item_ids
    b = mixed.recommend(ask(**request, surface="mixed")).item_ids
    cats = lambda ids: {int(i[1:]) % 2 for i in ids if i != "new1"}  # noqa: E731
    assert cats(a) == {0}
    assert cats(b[:2]) == {0, 1}


def test_exploration_is_seeded_by_person_and_hour(models: dict[str, Recommender]) -> None:
    stages = [*DEFAULT_STAGES[:-1], {"stage": "exploration", "epsilon": 0.5}, DEFAULT_STAGES[-1]]
    engine = Engine("v1", models, catalog_items(), {"explore": stages})
    a = engine.recommend(ask(user_id="u0", surface="explore", k=10))
    b = engine.recommend(ask(user_id="u0", surface="explore", k=10))
    assert a == b
    assert "something new to discover" in a.reasons


@pytest.mark.parametrize(
    ("stages", "field"),
    [
        ([{"stage": "teleport"}], "surfaces.s.stages[0]"),
        ([{"stage": "model", "model": "sasrec"}, {"stage": "score"}], "surfaces.s.stages[0]"),
        (
            [{"stage": "model", "model": "ials", "nn": 3}, {"stage": "score"}],
            "surfaces.s.stages[0]",
        ),
        ([{"stage": "score"}, {"stage": "filter", "categories": "x"}], "surfaces.s.stages[1]"),
        (
            [{"stage": "score"}, {"stage": "rules", "rules": [{"action": "x"}]}],
            "surfaces.s.stages[1]",
        ),
        ([{"stage": "model", "model": "ials"}], "surfaces.s"),
    ],
)
def test_invalid_surface_config_names_the_stage(stages: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_pipeline("s", stages, ["popular", "itemknn", "ials"])
    assert err.value.field == field
