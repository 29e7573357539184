"""`Weighting`: settings are checked when made, and only positively weighted types count."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from penchant.data import DEFAULT_TYPE_WEIGHTS, Weighting
from penchant.errors import InvalidInput

NAN, INF = math.nan, math.inf


def test_defaults_rank_purchase_over_click_over_view() -> None:
    rules = Weighting()

    assert rules.type_weights == dict(DEFAULT_TYPE_WEIGHTS)
    assert rules.type_weights["purchase"] == 5.0
    assert rules.type_weights["click"] == 1.0
    assert rules.type_weights["view"] == 0.5
    assert (rules.aggregate, rules.min_user_interactions, rules.min_item_interactions) == (
        "max",
        1,
        1,
    )
    assert rules.rating_threshold is None and rules.half_life_days is None


def test_negative_and_exposure_types_are_not_positive() -> None:
    positive = Weighting().positive_types

    assert positive == sorted(positive)
    assert {"purchase", "click", "view", "rating", "dwell"} <= set(positive)
    assert not {"impression", "dismiss", "skip", "dislike"} & set(positive)


def test_a_zero_weight_type_is_not_positive() -> None:
    rules = Weighting(type_weights={"click": 1.0, "view": 0.0, "like": 2.0})

    assert rules.positive_types == ["click", "like"]


def test_default_weights_cannot_be_changed_in_place() -> None:
    with pytest.raises(TypeError):
        DEFAULT_TYPE_WEIGHTS["click"] = 10.0  # type: ignore[index]
    rules = Weighting()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.aggregate = "sum"  # type: ignore[misc]


def test_each_weighting_gets_its_own_copy_of_the_defaults() -> None:
    first, second = Weighting(), Weighting()

    assert first.type_weights is not second.type_weights
    assert first.type_weights is not DEFAULT_TYPE_WEIGHTS


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"type_weights": {"click": -1.0}}, "type_weights.click"),
        ({"type_weights": {"click": 1.0, "view": NAN}}, "type_weights.view"),
        ({"type_weights": {"purchase": INF}}, "type_weights.purchase"),
        ({"type_weights": {"click": 0.0, "view": 0.0}}, "type_weights"),
        ({"type_weights": {}}, "type_weights"),
        ({"half_life_days": 0.0}, "half_life_days"),
        ({"half_life_days": -3.0}, "half_life_days"),
        ({"half_life_days": NAN}, "half_life_days"),
        ({"dwell_saturation_seconds": 0.0}, "dwell_saturation_seconds"),
        ({"dwell_saturation_seconds": -1.0}, "dwell_saturation_seconds"),
        ({"dwell_saturation_seconds": NAN}, "dwell_saturation_seconds"),
        ({"min_dwell_seconds": -0.5}, "min_dwell_seconds"),
        ({"aggregate": "mean"}, "aggregate"),
        ({"aggregate": "MAX"}, "aggregate"),
        ({"min_user_interactions": 0}, "min_user_interactions"),
        ({"min_item_interactions": 0}, "min_item_interactions"),
        ({"min_item_interactions": -2}, "min_item_interactions"),
    ],
)
def test_invalid_settings_name_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=field.replace(".", r"\.")):
        Weighting(**settings)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"rating_threshold": NAN}, "rating_threshold"),
        ({"min_dwell_seconds": NAN}, "min_dwell_seconds"),
        ({"dwell_saturation_seconds": INF}, "dwell_saturation_seconds"),
    ],
)
def test_non_finite_thresholds_are_rejected(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        Weighting(**settings)


def test_valid_edge_settings_are_accepted() -> None:
    rules = Weighting(
        type_weights={"click": 0.0, "purchase": 1e-9},
        rating_threshold=-1.0,
        min_dwell_seconds=0.0,
        dwell_saturation_seconds=1e-6,
        half_life_days=1e-3,
        aggregate="sum",
        min_user_interactions=1,
        min_item_interactions=1,
    )

    assert rules.positive_types == ["purchase"]
