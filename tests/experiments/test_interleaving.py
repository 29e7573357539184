"""Team-draft interleaving: hand-worked drafts, properties, credit, the sign test, sensitivity."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from penchant.errors import InvalidInput
from penchant.experiments import Interleaved, credit, preference, team_draft
from penchant.testing.cascade import cascade_users, first_click, noisy_ranking

Draft = tuple[tuple[str, ...], tuple[int, ...]]


def drafts(a: list[str], b: list[str], k: int, n: int = 400) -> Counter[Draft]:
    """How often each (items, teams) comes out of `n` drafts with one generator."""
    rng = np.random.default_rng(7)
    out = (team_draft(a, b, k, rng) for _ in range(n))
    return Counter((d.items, d.teams) for d in out)


# Each case lists every draft the coin flips can give, worked out by hand. Coins are flipped
# only when both teams have picked equally often and both rankings have an item left.
HAND_WORKED: list[tuple[list[str], list[str], int, set[Draft]]] = [
    # a = d1 d2 d3 d4, b = d2 d3 d4 d1, k = 4. Coin at picks 1 and 3.
    # A first: A d1, B d2 (its best), then A first: A d3, B d4 -> 0 1 0 1
    #                                 or B first: B d3, A d4 -> 0 1 1 0
    # B first: B d2, A d1,            then A first: A d3, B d4 -> 1 0 0 1
    #                                 or B first: B d3, A d4 -> 1 0 1 0
    (
        ["d1", "d2", "d3", "d4"],
        ["d2", "d3", "d4", "d1"],
        4,
        {
            (("d1", "d2", "d3", "d4"), (0, 1, 0, 1)),
            (("d1", "d2", "d3", "d4"), (0, 1, 1, 0)),
            (("d2", "d1", "d3", "d4"), (1, 0, 0, 1)),
            (("d2", "d1", "d3", "d4"), (1, 0, 1, 0)),
        },
    ),
    # a = x y, b = y z w, k = 4: y is in both lists and A runs out after two picks.
    # A first: A x, B y; A has nothing left (y is taken), so B goes on alone: z, w.
    # B first: B y, A x; again A is exhausted: B z, B w.
    (
        ["x", "y"],
        ["y", "z", "w"],
        4,
        {(("x", "y", "z", "w"), (0, 1, 1, 1)), (("y", "x", "z", "w"), (1, 0, 1, 1))},
    ),
    # k cuts the draft: a = p q r, b = r q p, k = 2: one coin, then the other team's best.
    (["p", "q", "r"], ["r", "q", "p"], 2, {(("p", "r"), (0, 1)), (("r", "p"), (1, 0))}),
    # The same single item in both lists: whoever wins the coin takes it; nothing is left.
    (["x"], ["x"], 5, {(("x",), (0,)), (("x",), (1,))}),
    # An empty ranking: the other team picks alone, with no coin.
    ([], ["u", "v"], 3, {(("u", "v"), (1, 1))}),
    ([], [], 3, {((), ())}),
    (["a"], ["b"], 0, {((), ())}),
]


@pytest.mark.parametrize(("a", "b", "k", "expected"), HAND_WORKED)
def test_team_draft_gives_exactly_the_hand_worked_drafts(
    a: list[str], b: list[str], k: int, expected: set[Draft]
) -> None:
    assert set(drafts(a, b, k)) == expected


def test_the_coin_is_fair() -> None:
    seen = drafts(["p", "q", "r"], ["r", "q", "p"], 2, n=4_000)
    assert stats.binomtest(seen[(("p", "r"), (0, 1))], 4_000, 0.5).pvalue > 0.001


def test_identical_rankings_get_random_teams_but_keep_the_order() -> None:
    # Four outcomes (coins at picks 1 and 3), all with the shared order p q r s.
    seen = drafts(["p", "q", "r", "s"], ["p", "q", "r", "s"], 4)
    assert {items for items, _ in seen} == {("p", "q", "r", "s")}
    assert {teams for _, teams in seen} == {(0, 1, 0, 1), (0, 1, 1, 0), (1, 0, 0, 1), (1, 0, 1, 0)}


POOL = [f"i{n}" for n in range(15)]
rankings_ = st.lists(st.sampled_from(POOL), unique=True, max_size=12)


@settings(max_examples=300)
@given(rankings_, rankings_, st.integers(0, 16), st.integers(0, 2**32 - 1))
def test_draft_properties(a: list[str], b: list[str], k: int, seed: int) -> None:
    d = team_draft(a, b, k, np.random.default_rng(seed))
    assert len(d.items) == len(set(d.items)) == min(k, len(set(a) | set(b)))
    for team, ranking in ((0, a), (1, b)):
        picked = [item for item, t in zip(d.items, d.teams, strict=True) if t == team]
        # Every item comes from its team's top k, in that ranking's order.
        assert set(picked) <= set(ranking[:k])
        assert picked == sorted(picked, key=ranking.index)
    if d.items:
        assert d.items[0] in (a[:1] + b[:1])


@settings(max_examples=300)
@given(rankings_, rankings_, st.data())
def test_teams_stay_within_one_pick_while_both_rankings_can_give(
    a: list[str], b: list[str], data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, min(len(a), len(b))))
    d = team_draft(a, b, k, np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))))
    assert len(d.items) == k
    gaps = np.cumsum([1 if t == 0 else -1 for t in d.teams])
    assert np.all(np.abs(gaps) <= 1)


def test_credit_counts_clicks_per_team() -> None:
    shown = Interleaved(("d1", "d2", "d3", "d4"), (0, 1, 0, 1))
    assert credit(shown, [0]) == 1  # A's d1
    assert credit(shown, [1]) == -1  # B's d2
    assert credit(shown, [0, 1]) == 0  # one each
    assert credit(shown, []) == 0
    assert credit(shown, [0, 2, 3]) == 1  # A two, B one
    assert credit(shown, [1, 1, 1, 0]) == 0  # a position clicked three times counts once
    assert credit(shown, np.array([3])) == -1


def test_preference_matches_the_hand_computation() -> None:
    r = preference([1, 1, 1, -1, 0])
    assert (r.wins_a, r.wins_b, r.ties, r.decided) == (3, 1, 1, 4)
    assert r.share_b == 0.25
    assert r.delta == -0.5
    # Two-sided sign test, 1 success in 4: 2 * P(X <= 1) = 2 * (1 + 4) / 16.
    assert r.p_value == pytest.approx(10 / 16)
    # Clopper-Pearson: with one success the lower bound solves 1 - (1 - p)^4 = alpha / 2.
    assert r.ci[0] == pytest.approx(1 - 0.975**0.25)
    assert r.ci[1] == pytest.approx(stats.beta.ppf(0.975, 2, 3))
    assert r.delta_ci == pytest.approx((2 * r.ci[0] - 1, 2 * r.ci[1] - 1))
    assert not r.significant
    # Ten wins of A, none of B: p = 2 / 2^10.
    r = preference([1] * 10 + [0] * 3)
    assert (r.share_b, r.delta, r.p_value) == (0.0, -1.0, pytest.approx(2 / 1024))
    assert r.significant
    assert r.ci[0] == 0.0


def test_preference_without_decided_impressions() -> None:
    for outcomes in ([], [0, 0, 0]):
        r = preference(outcomes)
        assert (r.wins_a, r.wins_b, r.ties) == (0, 0, len(outcomes))
        assert math.isnan(r.share_b) and math.isnan(r.delta)
        assert (r.p_value, r.ci) == (1.0, (0.0, 1.0))


# A simulated surface. Each user has a click probability for each of M items (few are
# attractive); a ranker sorts the items by that probability plus Gaussian noise, so less noise
# is a better ranker. Users follow a cascade: they read from the top, click an item with its
# probability and stop, or else read on with probability `patience`.
M, K = 30, 10
NAMES = np.array([f"d{i}" for i in range(M)])
INDEX = {name: i for i, name in enumerate(NAMES.tolist())}
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def users(n: int, rng: np.random.Generator) -> FloatArray:
    """Click probabilities, shape (n, M)."""
    return cascade_users(n, M, rng)


def interleaved_outcomes(
    attraction: FloatArray,
    ranked_a: IntArray,
    ranked_b: IntArray,
    patience: float,
    rng: np.random.Generator,
) -> list[int]:
    """One interleaved impression per user: its credit (+1 A, -1 B, 0 tie)."""
    shown = [
        team_draft(NAMES[ra].tolist(), NAMES[rb].tolist(), K, rng)
        for ra, rb in zip(ranked_a, ranked_b, strict=True)
    ]
    columns = np.array([[INDEX[item] for item in d.items] for d in shown])
    clicked = first_click(np.take_along_axis(attraction, columns, axis=1), patience, rng)
    return [credit(d, [c] if c >= 0 else []) for d, c in zip(shown, clicked, strict=True)]


def ab_clicks(
    attraction: FloatArray, ranked: IntArray, patience: float, rng: np.random.Generator
) -> int:
    """Users (one session each) who clicked, shown the top K of `ranked`."""
    shown = np.take_along_axis(attraction, ranked[:, :K], axis=1)
    return int((first_click(shown, patience, rng) >= 0).sum())


def test_the_ranker_that_puts_attractive_items_higher_wins() -> None:
    # Noise 0.1 against 0.3, 300 impressions: B's share of decided impressions is about 0.65.
    rng = np.random.default_rng(11)
    people = users(300, rng)
    good, poor = noisy_ranking(people, 0.1, rng), noisy_ranking(people, 0.3, rng)
    b_better = preference(interleaved_outcomes(people, poor, good, 0.8, rng))
    assert b_better.delta > 0.15
    assert b_better.p_value < 0.001
    assert b_better.ci[0] > 0.5
    a_better = preference(interleaved_outcomes(people, good, poor, 0.8, rng))
    assert a_better.delta < -0.15
    assert a_better.p_value < 0.001
    assert a_better.ci[1] < 0.5


def test_identical_rankers_give_no_preference_a_a() -> None:
    # 300 A/A experiments of 100 impressions each, both teams drafting from the same ranking.
    rng = np.random.default_rng(12)
    p_values = []
    for _ in range(300):
        people = users(100, rng)
        same = noisy_ranking(people, 0.1, rng)
        p_values.append(preference(interleaved_outcomes(people, same, same, 0.8, rng)).p_value)
    p = np.array(p_values)
    # The exact sign test is discrete and slightly conservative: no more false alarms than
    # the level, up to the binomial noise of 300 experiments, and not piled up anywhere.
    for level in (0.05, 0.2, 0.5):
        assert stats.binom.sf((p < level).sum() - 1, p.size, level) > 0.001
    assert 0.3 < (p < 0.5).mean() < 0.6
    assert 0.35 < p.mean() < 0.65


def users_for_power(effect: float, variance: float, power: float = 0.8) -> float:
    """Observations a two-sided 5% normal test needs to detect `effect` (per-observation var)."""
    z = stats.norm.ppf(0.975) + stats.norm.ppf(power)
    return float(z**2 * variance / effect**2)


def test_interleaving_detects_the_gap_with_a_fraction_of_the_users() -> None:
    # Patient users (they read on 95% of the time) and rankers with noise 0.2 (A) and 0.1 (B).
    rng = np.random.default_rng(13)
    patience, noise_a, noise_b, n = 0.95, 0.2, 0.1, 400

    # Users needed, from per-user rates measured on a pilot.
    people = users(40_000, rng)
    ctr_a = ab_clicks(people[::2], noisy_ranking(people[::2], noise_a, rng), patience, rng) / 20_000
    ctr_b = (
        ab_clicks(people[1::2], noisy_ranking(people[1::2], noise_b, rng), patience, rng) / 20_000
    )
    # A/B: users split in halves, each half's CTR is a mean of Bernoulli sessions.
    ab_users = 2 * users_for_power(ctr_b - ctr_a, 2 * (ctr_a * (1 - ctr_a) + ctr_b * (1 - ctr_b)))
    pilot = people[:4_000]
    wins = np.array(
        interleaved_outcomes(
            pilot,
            noisy_ranking(pilot, noise_a, rng),
            noisy_ranking(pilot, noise_b, rng),
            patience,
            rng,
        )
    )
    il_users = users_for_power(
        float(np.mean(wins == -1) - np.mean(wins == 1)), float(np.mean(wins != 0))
    )
    assert il_users < ab_users / 2

    # And directly: 30 experiments with n users each, by both methods.
    detected = {"interleaving": 0, "a/b": 0}
    for _ in range(30):
        people = users(n, rng)
        outcome = preference(
            interleaved_outcomes(
                people,
                noisy_ranking(people, noise_a, rng),
                noisy_ranking(people, noise_b, rng),
                patience,
                rng,
            )
        )
        detected["interleaving"] += outcome.significant and outcome.delta > 0
        half = n // 2
        clicks_a = ab_clicks(
            people[:half], noisy_ranking(people[:half], noise_a, rng), patience, rng
        )
        clicks_b = ab_clicks(
            people[half:], noisy_ranking(people[half:], noise_b, rng), patience, rng
        )
        table = [[clicks_a, half - clicks_a], [clicks_b, half - clicks_b]]
        detected["a/b"] += (
            stats.chi2_contingency(table, correction=False).pvalue < 0.05 and clicks_b > clicks_a
        )
    assert detected["interleaving"] >= 24  # power about 0.9 at 400 users
    assert detected["a/b"] <= 15  # power about 0.3 at 400 users


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: team_draft(["a"], ["b"], -1, np.random.default_rng(0)), "k"),
        (lambda: team_draft(["a"], ["b"], 2.0, np.random.default_rng(0)), "k"),
        (lambda: team_draft("abc", ["b"], 2, np.random.default_rng(0)), "a"),
        (lambda: team_draft(["a"], ["b", "c", "b"], 2, np.random.default_rng(0)), "b"),
        (lambda: Interleaved(("a", "b"), (0,)), "teams"),
        (lambda: Interleaved(("a", "a"), (0, 1)), "items"),
        (lambda: Interleaved(("a", "b"), (0, 2)), "teams"),
        (lambda: credit(Interleaved(("a",), (0,)), [1]), "clicked_positions"),
        (lambda: credit(Interleaved(("a",), (0,)), [-1]), "clicked_positions"),
        (lambda: credit(Interleaved(("a",), (0,)), [0.0]), "clicked_positions"),
        (lambda: preference([1, 2]), "outcomes"),
        (lambda: preference(["win"]), "outcomes"),
        (lambda: preference([True, False]), "outcomes"),
        (lambda: preference([1, -1], alpha=0.0), "alpha"),
        (lambda: preference([1, -1], alpha=1.0), "alpha"),
    ],
)
def test_bad_input_is_refused_with_the_field(make: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make()  # type: ignore[operator]
    assert caught.value.field == field
