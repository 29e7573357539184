"""The default pipeline on a world with known answers: sources, filters, exclusions, reasons."""

from __future__ import annotations

import pytest
from ranking_world import NOW, catalog_items

from penchant.data.dataset import IdIndex
from penchant.errors import InvalidInput, NotFound
from penchant.models import create_model
from penchant.models.base import Recommender
from penchant.ranking import Engine, RankingRequest
from penchant.ranking.pipeline import DEFAULT_STAGES
from penchant.ranking.state import Activity
from penchant.testing.synthetic import planted_blocks


def ask(engine: Engine, **fields: object) -> RankingRequest:
    context = dict(fields.pop("context", {}))  # type: ignore[call-overload]
    context.setdefault("time", NOW)
    return RankingRequest.model_validate({"k": 5, **fields, "context": context})


def group(item_id: str) -> int:
    return int(item_id.removeprefix("i")) % 2


def test_a_known_user_gets_unseen_items_of_their_own_taste(engine: Engine) -> None:
    ranked = engine.recommend(ask(engine, user_id="u1", k=6))
    seen = {str(engine.catalog.ids[c]) for c in engine.serving.models["ials"].history_[1].indices}
    assert len(ranked.item_ids) == 6
    assert not seen & set(ranked.item_ids)
    assert {group(i) for i in ranked.item_ids if i != "new1"} == {1}
    assert ranked.version == "v1" and ranked.pipeline == "default"
    assert ranked.scores == sorted(ranked.scores, reverse=True)


def test_unavailable_expired_and_unpublished_items_are_never_served(engine: Engine) -> None:
    for user in ("u0", "u2", "u4", "u6"):
        ranked = engine.recommend(ask(engine, user_id=user, k=20))
        assert not {"i2", "i4", "i6"} & set(ranked.item_ids)


def test_filters_narrow_the_list(engine: Engine) -> None:
    ranked = engine.recommend(ask(engine, user_id="u0", k=5, filters={"categories": ["odd"]}))
    assert ranked.item_ids and {group(i) for i in ranked.item_ids if i != "new1"} == {1}
    ranked = engine.recommend(
        ask(engine, user_id="u0", k=30, filters={"attributes": {"price": {"min": 10, "max": 19}}})
    )
    assert ranked.item_ids
    assert all(10 <= int(i[1:]) <= 19 for i in ranked.item_ids)
    ranked = engine.recommend(
        ask(engine, user_id="u1", k=30, filters={"attributes": {"language": {"in": ["fr"]}}})
    )
    assert ranked.item_ids and all(int(i[1:]) >= 20 for i in ranked.item_ids)
    ranked = engine.recommend(ask(engine, user_id="u1", k=30, filters={"providers": ["p1"]}))
    assert ranked.item_ids and all(i == "new1" or int(i[1:]) % 4 == 1 for i in ranked.item_ids)


def test_just_consumed_purchased_and_dismissed_items_drop_out_at_once(engine: Engine) -> None:
    before = engine.recommend(ask(engine, user_id="u1", k=6)).item_ids
    activity = Activity(recent=[before[0]], purchased=[before[1]], dismissed=[before[2]])
    after = engine.recommend(ask(engine, user_id="u1", k=6), user=activity).item_ids
    assert not set(before[:3]) & set(after)
    assert len(after) == 6 and {group(i) for i in after if i != "new1"} == {1}


def test_a_new_users_fresh_events_steer_their_list(engine: Engine) -> None:
    cold = engine.recommend(ask(engine, user_id="stranger", k=5))
    assert all(r and r.startswith("trending") for r in cold.reasons)
    warm = engine.recommend(
        ask(engine, user_id="stranger", k=5), user=Activity(["i1", "i3", "i5"], [], [])
    )
    assert {group(i) for i in warm.item_ids if i != "new1"} == {1}
    assert any(r and r.startswith("because you viewed Item ") for r in warm.reasons)


def test_an_anonymous_session_is_steered_by_its_items(engine: Engine) -> None:
    ranked = engine.recommend(
        ask(engine, session_id="s1", k=5), session=Activity(["i8", "i10"], [], [])
    )
    assert {group(i) for i in ranked.item_ids} == {0}
    assert "i8" not in ranked.item_ids and "i10" not in ranked.item_ids
    assert any(r and r.endswith("in this session") for r in ranked.reasons)


def test_a_reason_names_a_past_item_of_this_session_as_such(
    models: dict[str, Recommender],
) -> None:
    """A source that ranks from the person's whole history (here iALS alone) names the item
    behind a recommendation; when that item was taken in this session, the reason says so."""
    stages = [{"stage": "model", "model": "ials"}, {"stage": "score"}, {"stage": "explain"}]
    engine = Engine("v1", models, catalog_items(), {"only": stages})
    ranked = engine.recommend(
        ask(engine, session_id="s1", k=5, surface="only"), session=Activity(["i8", "i10"], [], [])
    )
    assert ranked.reasons and all(r and r.endswith("in this session") for r in ranked.reasons)
    trained = engine.recommend(ask(engine, user_id="u0", k=5, surface="only"))
    assert not any(r and r.endswith("in this session") for r in trained.reasons)


def sources(engine: Engine) -> list[str]:
    return [getattr(stage, "name", "") for _, stage in engine.pipelines["default"].stages]


def test_the_default_surface_leads_with_taste_only_when_it_can_personalize(
    models: dict[str, Recommender],
) -> None:
    data = planted_blocks(n_users=60, n_items=40, blocks=2, density=0.5, rng=0)
    groups = {str(i): ["even" if int(str(i)[1:]) % 2 == 0 else "odd"] for i in data.item_ids}
    with_categories = data.with_item_texts({str(i): "t" for i in data.item_ids}, groups)
    blind = Engine("v1", {**models, "taste": create_model("taste").fit(data)}, catalog_items())
    assert "taste" not in sources(blind)
    taste = create_model("taste").fit(with_categories)
    engine = Engine("v1", {**models, "taste": taste}, catalog_items())
    assert "taste" in sources(engine)
    ranked = engine.recommend(ask(engine, user_id="u1", k=6))
    assert {group(i) for i in ranked.item_ids if i != "new1"} == {1}
    assert "taste" in ranked.sources
    assert models["popular"].personalizes is False and models["ials"].personalizes is True


def test_cold_start_is_trending_in_the_browsed_category(engine: Engine) -> None:
    ranked = engine.recommend(ask(engine, session_id="s2", k=5, context={"category": "odd"}))
    assert ranked.item_ids and all(r == "trending in odd" for r in ranked.reasons)
    assert {group(i) for i in ranked.item_ids if i != "new1"} == {1}


def test_page_item_brings_similar_items(engine: Engine) -> None:
    ranked = engine.recommend(ask(engine, session_id="s3", k=5, context={"page_item": "i9"}))
    assert "i9" not in ranked.item_ids
    assert {group(i) for i in ranked.item_ids} == {1}
    assert "similar to Item 9" in ranked.reasons


def test_similar_items_endpoint_logic(engine: Engine) -> None:
    ranked = engine.similar("i9", 5)
    assert len(ranked.item_ids) == 5 and {group(i) for i in ranked.item_ids} == {1}
    with pytest.raises(NotFound):
        engine.similar("nope", 5)


def test_followed_providers_bring_their_new_items(models: dict[str, Recommender]) -> None:
    stages = [{**s, "weight": 3.0} if s["stage"] == "followed" else s for s in DEFAULT_STAGES]
    engine = Engine("v1", models, catalog_items(), {"default": stages})
    # i1, i5 and i9 are all from provider p1, which has just published new1
    ranked = engine.recommend(
        ask(engine, user_id="fan", k=5), user=Activity(["i1", "i5", "i9"], [], [])
    )
    assert "new1" in ranked.item_ids
    reason = ranked.reasons[ranked.item_ids.index("new1")]
    assert reason == "new from p1, a provider you follow"


def test_the_same_request_gives_the_same_list(engine: Engine) -> None:
    a = engine.recommend(ask(engine, user_id="u3", k=7))
    b = engine.recommend(ask(engine, user_id="u3", k=7))
    assert a == b


def test_bad_requests_name_the_field(engine: Engine) -> None:
    with pytest.raises(InvalidInput) as err:
        engine.recommend(ask(engine, user_id="u0", k=500))
    assert err.value.field == "k"
    with pytest.raises(InvalidInput) as err:
        engine.recommend(ask(engine, user_id="u0", surface="nowhere"))
    assert err.value.field == "surface"
    with pytest.raises(InvalidInput) as err:
        engine.recommend(ask(engine))
    assert err.value.field == "user_id"


def test_a_loaded_engine_answers_without_building_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user id lookup is built when the engine is loaded (off the request path during a
    swap), not by the first request it answers."""
    data = planted_blocks(n_users=30, n_items=40, blocks=2, density=0.5, rng=1)
    fresh = {"popular": create_model("popular").fit(data)}
    engine = Engine("v2", fresh, catalog_items())
    built: list[int] = []
    original = IdIndex.__init__

    def counting(self: IdIndex, vocabulary: object) -> None:
        built.append(1)
        original(self, vocabulary)  # type: ignore[arg-type]

    monkeypatch.setattr(IdIndex, "__init__", counting)
    ranked = engine.recommend(ask(engine, user_id="u3", k=5))
    assert ranked.item_ids and not built
