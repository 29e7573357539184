"""Tuning on the validation split only; `auto` picks by validation and can blend."""

from __future__ import annotations

import pytest

from penchant.data import Split, split
from penchant.errors import InvalidInput
from penchant.evaluation.run import evaluate_model
from penchant.evaluation.tuning import (
    AUTO_MODELS,
    SEARCH_SPACES,
    Choice,
    Tuned,
    auto_select,
    tune_model,
)
from penchant.models import Blend, Hybrid
from penchant.testing.synthetic import planted_blocks


@pytest.fixture
def validation() -> Split:
    data = planted_blocks(n_users=90, n_items=40, rng=4)
    return split(split(data, "holdout", rng=0).train, "holdout", rng=1)


def test_tuning_is_seeded_and_stays_in_the_space(validation: object) -> None:
    a = tune_model("itemknn", validation, n_trials=5, rng=3)  # type: ignore[arg-type]
    b = tune_model("itemknn", validation, n_trials=5, rng=3)  # type: ignore[arg-type]
    assert a.params == b.params and a.value == b.value
    # the best trial's model comes back fitted, so auto need not fit it again
    assert a.model is not None and a.model.get_params()["k"] == a.params["k"]
    again = evaluate_model(a.model, validation, [10], fit=False)  # type: ignore[arg-type]
    assert again.mean("ndcg@10") == a.value
    assert len(a.trials) == 5
    assert a.value == max(v for _, v in a.trials)
    assert 5 <= a.params["k"] <= 1000


def test_one_knob_models_need_few_trials(validation: object) -> None:
    tuned = tune_model("ease", validation, n_trials=50)  # type: ignore[arg-type]
    assert len(tuned.trials) == 10


def test_auto_compares_every_model_a_blend_and_a_learned_ranker(validation: Split) -> None:
    pytest.importorskip("lightgbm", reason="the hybrid needs penchant[rank]")
    choice = auto_select(
        validation, names=("popular", "itemknn", "ease"), n_trials=3, blend_trials=5
    )
    assert set(choice.candidates) == {"popular", "itemknn", "ease", "blend", "hybrid"}
    assert choice.value == max(choice.candidates.values())
    model = choice.build()
    if choice.hybrid_members:
        assert isinstance(model, Hybrid) and choice.description.startswith("hybrid(")
    elif choice.weights:
        assert isinstance(model, Blend)
    else:
        assert model.name == choice.description
    # the ranker was judged as built: the tuned members, each with its tuned parameters
    members = sorted(choice.tuned, key=lambda n: -choice.tuned[n].value)
    ranker = Hybrid(
        members=members, member_params={n: choice.tuned[n].params for n in members}, rng=0
    )
    weighted = validation.with_recency(choice.recency_half_life_days)
    again = evaluate_model(ranker, weighted, [10]).mean("ndcg@10")
    assert again == pytest.approx(choice.candidates["hybrid"], abs=1e-12)
    without = auto_select(
        validation, names=("popular", "itemknn"), n_trials=2, blend_trials=2, hybrid=False
    )
    assert "hybrid" not in without.candidates


def test_auto_considers_sasrec_and_every_model_by_default() -> None:
    pytest.importorskip("torch", reason="sasrec needs penchant[deep]")
    data = planted_blocks(n_users=60, n_items=30, rng=2)
    validation = split(split(data, "leave-last-out", rng=0).train, "leave-last-out", rng=1)
    choice = auto_select(validation, n_trials=1, blend_trials=2, hybrid=False)
    assert set(choice.tuned) == set(AUTO_MODELS) and "sasrec" in AUTO_MODELS
    assert set(choice.candidates) == {*AUTO_MODELS, "blend"}
    # the blend starts from "the best model alone", so it never does worse
    best = max(choice.tuned, key=lambda n: choice.tuned[n].value)
    assert choice.candidates["blend"] >= choice.tuned[best].value
    assert all(t.model is None for t in choice.tuned.values())  # nothing held past auto


def test_a_chosen_hybrid_is_built_with_the_tuned_members() -> None:
    tuned = {
        "itemknn": Tuned("itemknn", {"k": 7, "shrinkage": 0.0, "weighted": False}, 0.3),
        "popular": Tuned("popular", {"half_life_days": None}, 0.2),
    }
    choice = Choice(
        "hybrid(itemknn, popular)", 0.4, tuned, {}, {}, None, {}, ["itemknn", "popular"]
    )
    model = choice.build(rng=3)
    assert isinstance(model, Hybrid)
    assert list(model.members) == ["itemknn", "popular"] and model.rng == 3
    data = planted_blocks(n_users=60, n_items=30, rng=2)
    model.fit(data)
    assert model.members_["itemknn"].get_params()["k"] == 7
    with pytest.raises(InvalidInput, match="member_params"):
        Hybrid(members=["itemknn"], member_params={"ease": {}}).fit(data)


def test_auto_never_looks_at_the_test_pairs() -> None:
    data = planted_blocks(n_users=90, n_items=40, rng=5)
    outer = split(data, "holdout", rng=0)
    validation = split(outer.train, "holdout", rng=1)
    # the validation split is made from training pairs only
    train_pairs = set(zip(outer.train.users.tolist(), outer.train.items.tolist(), strict=True))
    for part in (validation.train, validation.test):
        assert set(zip(part.users.tolist(), part.items.tolist(), strict=True)) <= train_pairs
    assert not set(zip(outer.test.users.tolist(), outer.test.items.tolist(), strict=True)) & {
        (u, i)
        for u, i in zip(validation.test.users.tolist(), validation.test.items.tolist(), strict=True)
    }


def test_unknown_models_and_metrics_are_refused(validation: object) -> None:
    with pytest.raises(InvalidInput, match="cannot tune"):
        tune_model("blend", validation)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="NAME@K"):
        tune_model("ease", validation, metric="ndcg")  # type: ignore[arg-type]
    assert set(SEARCH_SPACES) == {
        *("popular", "itemknn", "ials", "bpr", "ease", "content", "session-knn", "sasrec")
    }


def test_auto_finds_recency_when_tastes_drift() -> None:
    from penchant.evaluation.run import evaluate_model
    from penchant.evaluation.tuning import choose_recency
    from penchant.models import ItemKNN
    from penchant.testing.synthetic import drifting_tastes

    data = drifting_tastes()
    outer = split(data, "leave-last-out")
    validation = split(outer.train, "leave-last-out")
    half_life, scores = choose_recency(validation)
    assert half_life is not None and half_life <= 1.0  # hours-apart items: short half-lives
    assert scores[f"{half_life:g}"] > scores["none"]
    plain = evaluate_model(ItemKNN(), outer, [5]).mean("hit_rate@5")
    recent = evaluate_model(ItemKNN(), outer.with_recency(half_life), [5]).mean("hit_rate@5")
    assert recent > plain + 0.1
