"""The calibration, long-tail, popularity-penalty and fair-exposure stages in a pipeline:
what they move, what they leave (pins), and a request's own strength."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from penchant.data import Dataset
from penchant.errors import ConfigError, InvalidInput
from penchant.models import create_model
from penchant.ranking.catalog import ServingCatalog
from penchant.ranking.fair_stages import Calibration, FairExposure, LongTail, PopularityPenalty
from penchant.ranking.pipeline import build_pipeline
from penchant.ranking.query import Query, Serving
from penchant.ranking.request import RankingRequest
from penchant.ranking.stages import PIN, SCORE
from penchant.schema import Item
from penchant.testing.reranker_contract import query_for
from penchant.types import Candidates

# ten items, best first: i0..i5 of category a (providers p0), i6..i9 of b (provider p1)
ITEMS = [
    Item(id=f"i{i}", categories=["a" if i < 6 else "b"], provider="p0" if i < 6 else "p1")
    for i in range(10)
]
SCORES = np.linspace(1.0, 0.1, 10).astype(np.float32)


def serving() -> Serving:
    # popularity: i0..i2 taken by many people (the head), the rest by one each
    users = [u for u in range(30)] + [u for u in range(30)] + [u for u in range(30)]
    items = [0] * 30 + [1] * 30 + [2] * 30
    users += list(range(7))
    items += [3, 4, 5, 6, 7, 8, 9]
    data = Dataset.from_arrays(
        [f"u{u}" for u in range(30)],
        [item.id for item in ITEMS],
        users=np.array(users),
        items=np.array(items),
        first_ts=np.arange(len(users), dtype=np.int64),
    )
    popular = create_model("popular").fit(data)
    return Serving("v", {"popular": popular}, ServingCatalog.build([i.id for i in ITEMS], ITEMS))


def query(history: list[int], k: int = 4, **request: Any) -> Query:
    return query_for(history, k, len(ITEMS), **request)


def ranked(stage: Any, q: Query, pins: tuple[int, ...] = ()) -> list[int]:
    columns = {SCORE: SCORES.copy(), PIN: np.zeros(10, np.float32)}
    for row in pins:
        columns[PIN][row] = 1.0
    out = stage(Candidates(np.arange(10, dtype=np.int64), columns), q, serving())
    return [int(c) for c in out.items]


def test_calibration_follows_the_history_mix() -> None:
    half = [0, 1, 6, 7]  # a history half a, half b
    assert ranked(Calibration(strength=0.0), query(half))[:4] == [0, 1, 2, 3]
    # a and b alternate, each in its relevance order; the rest keeps its order after them
    assert ranked(Calibration(strength=0.9), query(half)) == [0, 6, 1, 7, 2, 3, 4, 5, 8, 9]
    # a history of a only: the list stays on a
    assert ranked(Calibration(strength=0.9), query([0, 1]))[:4] == [0, 1, 2, 3]
    # nobody's history: nothing to calibrate to
    assert ranked(Calibration(strength=0.9), query([]))[:4] == [0, 1, 2, 3]


def test_a_request_sets_the_strength_of_its_list() -> None:
    half = [0, 1, 6, 7]
    stage = Calibration(strength=0.9)
    assert ranked(stage, query(half, rerank={"calibration": 0.0}))[:4] == [0, 1, 2, 3]
    with pytest.raises(InvalidInput) as info:
        ranked(stage, query(half, rerank={"calibration": 1.5}))
    assert info.value.field == "rerank.calibration"
    with pytest.raises(ValidationError):
        RankingRequest(user_id="u", rerank={"no_such_stage": 0.5})


def test_pinned_rows_are_not_moved_by_a_reranker() -> None:
    out = ranked(Calibration(strength=0.9), query([0, 1, 6, 7]), pins=(2,))
    assert out[-1] == 2 and 2 not in out[:-1]


def test_long_tail_brings_tail_items_up() -> None:
    # the head is i0..i2 (90 of 97 interactions, 80% reached at i2); the rest is tail
    plain = ranked(LongTail(strength=0.0), query([0, 3]))[:3]
    assert plain == [0, 1, 2]
    # half the history is tail: after the best head item, the best tail item
    assert ranked(LongTail(strength=0.8), query([0, 3]))[:3] == [0, 3, 1]


def test_popularity_penalty_lets_less_popular_items_in() -> None:
    # popularity over the most popular item's: i0..i2 1, the rest 1/30. Strength 0.2:
    # 0.8 x score - 0.2 x popularity -> i0 0.6, i1 0.52, i2 0.44, i3 0.553, i4 0.473: i2 gives
    # way to i4, and the four are shown by score; the rest keeps its order after them
    assert ranked(PopularityPenalty(strength=0.0), query([])) == list(range(10))
    assert ranked(PopularityPenalty(strength=0.2), query([])) == [0, 1, 3, 4, 2, 5, 6, 7, 8, 9]
    assert ranked(PopularityPenalty(strength=0.2), query([], rerank={"popularity_penalty": 0}))[
        :4
    ] == [0, 1, 2, 3]
    assert ranked(PopularityPenalty(strength=0.6), query([]))[:4] == [3, 4, 5, 6]


def test_fair_exposure_gives_the_other_provider_a_place_near_the_top() -> None:
    assert ranked(FairExposure(strength=0.0), query([]))[:4] == [0, 1, 2, 3]
    # equal shares: p1 owes most of position 2's exposure, and then of position 3's
    assert ranked(FairExposure(strength=1.0, target="equal"), query([]))[:4] == [0, 6, 7, 1]
    # relevance shares (p1 holds 4 of the 10, with less relevance): one p1 item in the top 3
    assert ranked(FairExposure(strength=1.0), query([]))[:4] == [0, 1, 6, 2]
    assert ranked(FairExposure(strength=0.5), query([]))[:4] == [0, 1, 2, 6]
    with pytest.raises(InvalidInput):
        FairExposure(target="luck")


def test_fair_exposure_can_follow_the_interactions_each_provider_earned() -> None:
    # p0 (i0..i5) holds 93 of the 97 interactions, p1 (i6..i9) 4: p1 is owed 4% of the
    # exposure, which the first four positions do not reach, so the list keeps its order
    stage = FairExposure(strength=1.0, target="interactions")
    assert ranked(stage, query([]))[:4] == [0, 1, 2, 3]
    shares = stage._interaction_shares(serving(), serving().catalog.kind_labels("provider"))
    assert shares == pytest.approx([93 / 97, 4 / 97])
    # providers that earned alike get alike: i0..i2 of p0 and i3..i5 of p1, one
    # interaction each. After i0 (exposure 1), p1 is owed half of 1.63 and gets position 2,
    # and still owes (1.07 - 0.63) / 0.5 = 0.87 of position 3 against p0's 0.13; position 4
    # goes back to p0
    even = [*ITEMS[:3], *(Item(id=f"i{i}", categories=["a"], provider="p1") for i in (3, 4, 5))]
    catalog = ServingCatalog.build([item.id for item in even], even)
    data = Dataset.from_arrays(
        [f"u{u}" for u in range(6)],
        [item.id for item in even],
        users=np.arange(6),
        items=np.arange(6),
        first_ts=np.arange(6, dtype=np.int64),
    )
    alike = Serving("v", {"popular": create_model("popular").fit(data)}, catalog)
    columns = {SCORE: SCORES[:6].copy(), PIN: np.zeros(6, np.float32)}
    out = stage(Candidates(np.arange(6, dtype=np.int64), columns), query([]), alike)
    assert [int(c) for c in out.items][:4] == [0, 3, 4, 1]


def test_the_stages_are_configured_by_name_in_a_surface() -> None:
    stages = [
        {"stage": "score"},
        {"stage": "calibration", "by": "category", "strength": 0.5},
        {"stage": "long_tail", "strength": 0.2},
        {"stage": "popularity_penalty", "strength": 0.4},
        {"stage": "fair_exposure", "by": "provider", "target": "equal"},
    ]
    pipeline = build_pipeline("fair", stages, ["popular"])
    assert [name for name, _ in pipeline.stages][-4:] == [
        "calibration",
        "long_tail",
        "popularity_penalty",
        "fair_exposure",
    ]
    with pytest.raises(ConfigError):
        build_pipeline("bad", [{"stage": "calibration", "nope": 1}], ["popular"])


def test_fair_exposure_needs_the_popularity_model_only_for_the_interactions_target() -> None:
    for target in ("relevance", "equal"):
        stages = [{"stage": "score"}, {"stage": "fair_exposure", "target": target}]
        build_pipeline("fair", stages, ["ials"])
    with pytest.raises(ConfigError) as info:
        stages = [{"stage": "score"}, {"stage": "fair_exposure", "target": "interactions"}]
        build_pipeline("fair", stages, ["ials"])
    assert "popular" in str(info.value)
