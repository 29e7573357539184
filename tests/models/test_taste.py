"""The category-taste model: its scores by hand, its click model against statsmodels, and
the shared recommender contract."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from penchant.data import Dataset, ImpressionLog
from penchant.errors import InvalidInput
from penchant.models import create_model
from penchant.models.taste import CategoryTaste, click_effects
from penchant.testing import RecommenderContract
from penchant.testing.synthetic import planted_blocks


def with_groups(data: Dataset) -> Dataset:
    """Planted blocks whose items carry their group as a category (`even`, `odd`)."""
    categories = {str(i): ["even" if int(str(i)[1:]) % 2 == 0 else "odd"] for i in data.item_ids}
    return data.with_item_texts({str(i): "text" for i in data.item_ids}, categories)


def shown_lists(data: Dataset, n_lists: int = 400, size: int = 6, rng: int = 0) -> ImpressionLog:
    """Lists of random items shown to random people; a person takes an item of their own
    group (user and item codes of the same parity) with chance 0.5 at the top, less lower."""
    gen = np.random.default_rng(rng)
    users = np.repeat(gen.integers(data.n_users, size=n_lists), size)
    items = np.concatenate(
        [gen.choice(data.n_items, size=size, replace=False) for _ in range(n_lists)]
    )
    positions = np.tile(np.arange(size), n_lists)
    own = (users % 2) == (items % 2)
    p = np.where(own, 0.5, 0.05) / (1.0 + positions)
    return ImpressionLog(
        users=users.astype(np.int64),
        items=items.astype(np.int64),
        ts=np.repeat(np.arange(n_lists, dtype=np.int64), size),
        groups=np.repeat(np.arange(n_lists, dtype=np.int64), size),
        devices=np.full(len(users), None, dtype=object),
        labels=(gen.random(len(users)) < p).astype(np.int8),
        positions=positions.astype(np.int64),
    )


class TestCategoryTaste(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [
        {"strength": 1.0},
        {"prior": 50.0},
        {"regularization": 20.0},
        {"positions": 2},
    ]

    def make_model(self) -> CategoryTaste:
        return CategoryTaste()

    @pytest.fixture
    def data(self) -> Dataset:
        planted = with_groups(planted_blocks())
        return planted.with_impressions(shown_lists(planted))


def test_scores_are_the_appeal_plus_the_smoothed_category_shares() -> None:
    # three items: a (cat x), b (cat y), c (cats x and y); u0 took a and c, u1 took b
    data = Dataset.from_arrays(
        user_ids=["u0", "u1"],
        item_ids=["a", "b", "c"],
        users=np.array([0, 0, 1]),
        items=np.array([0, 2, 1]),
        first_ts=np.arange(3, dtype=np.int64),
    ).with_item_texts({"a": "t", "b": "t", "c": "t"}, {"a": ["x"], "b": ["y"], "c": ["x", "y"]})
    model = CategoryTaste(strength=2.0, prior=1.0).fit(data)
    # without a log the appeal is log(1 + people who took the item): 1 each
    np.testing.assert_allclose(model.appeal_, np.log(2.0) * np.ones(3), rtol=1e-6)
    # the shares of everything taken: a -> x 1; c -> x 0.5, y 0.5; b -> y 1: x 1.5, y 1.5
    np.testing.assert_allclose(model.population_, [0.5, 0.5])
    # u0 took x 1.5, y 0.5; smoothed with one pseudo-item at (0.5, 0.5): (2/3, 1/3)
    taste = 2.0 * (np.array([2 / 3, 1 / 3]) - 0.5)
    expected = np.log(2.0) + np.array([taste[0], taste[1], (taste[0] + taste[1]) / 2])
    scores = model.scores(np.array([0]), data.matrix[0])
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)


def test_a_planted_taste_wins_over_a_more_appealing_item() -> None:
    data = with_groups(planted_blocks())
    model = CategoryTaste(strength=3.0).fit(data)
    # group 0 items are taken more often, so the appeal favours them; an odd-group person's
    # history still puts odd items first
    assert model.appeal_[::2].mean() > model.appeal_[1::2].mean()
    ids, _ = model.recommend(["u1"], k=5)
    assert all(int(i[1:]) % 2 == 1 for i in ids[0])
    cold, _ = model.recommend(["never-seen"], k=3)
    assert all(int(i[1:]) % 2 == 0 for i in cold[0])


def test_without_categories_everyone_gets_the_appeal_ranking() -> None:
    data = planted_blocks()
    model = CategoryTaste().fit(data)
    scores = model.scores(np.arange(data.n_users), data.matrix)
    np.testing.assert_allclose(scores, np.broadcast_to(model.appeal_, scores.shape))


def test_click_effects_are_statsmodels_ridge_logistic_regression() -> None:
    """The fit satisfies the optimality conditions of the same penalized likelihood as
    statsmodels computes it (its score), and agrees with statsmodels' own ridge fit."""
    statsmodels = pytest.importorskip("statsmodels.api")
    data = planted_blocks(n_users=20, n_items=12)
    log = shown_lists(data, n_lists=300, size=5, rng=4)
    lam, positions = 2.0, 3
    items, places = click_effects(log, data.n_items, lam, positions)
    assert places.shape == (positions + 1,)
    pos = np.minimum(log.positions, positions - 1)
    design = np.hstack([np.eye(data.n_items)[log.items], np.eye(positions)[pos]])
    glm = statsmodels.GLM(log.labels.astype(float), design, family=statsmodels.families.Binomial())
    theta = np.r_[items, places[:positions]]
    penalty = np.r_[np.full(data.n_items, lam), np.zeros(positions)]
    np.testing.assert_allclose(glm.score(theta) - penalty * theta, 0.0, atol=1e-5)
    # statsmodels minimizes -loglike / n + alpha / 2 * |b|^2 with scipy's BFGS at its default
    # tolerance, which stops about 1e-3 short of the optimum here
    alpha = penalty / len(log)
    theirs = glm.fit_regularized(alpha=alpha, L1_wt=0.0).params
    np.testing.assert_allclose(theta, theirs, atol=2e-3)
    # the positions' effects fall down the list, as the clicks were drawn
    assert places[0] > places[1] > places[2]


def test_the_click_model_orders_items_by_their_click_rate() -> None:
    data = with_groups(planted_blocks())
    log = shown_lists(data, n_lists=600)
    model = CategoryTaste().fit(data.with_impressions(log))
    shown = np.bincount(log.items, minlength=data.n_items)
    taken = np.bincount(log.items, weights=log.labels, minlength=data.n_items)
    rate = taken / np.maximum(shown, 1)
    assert np.corrcoef(rate, model.appeal_)[0, 1] > 0.9


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"strength": -1.0}, "strength"),
        ({"prior": 0.0}, "prior"),
        ({"regularization": 0.0}, "regularization"),
        ({"positions": 0}, "positions"),
        ({"positions": 2.5}, "positions"),
    ],
)
def test_bad_hyperparameters_are_refused_naming_the_field(
    params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        create_model("taste", **params).fit(with_groups(planted_blocks()))
    assert info.value.field == field
