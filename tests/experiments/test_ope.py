"""Off-policy estimators: hand-computed answers, interval formulas, coverage and bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from ope_world import draw_log, make_world
from scipy import stats

from penchant.errors import InvalidInput
from penchant.experiments import cross_fit_rewards, dm, dr, estimate_all, ips, snips

# Four rounds, two actions, one position; every answer below is worked out by hand.
REWARD = np.array([1.0, 0.0, 1.0, 0.0])
ACTION = np.array([0, 1, 1, 0])
PSCORE = np.array([0.5, 0.25, 0.5, 0.8])
DIST = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])[:, :, None]
QHAT = np.array([[0.6, 0.2], [0.1, 0.3], [0.5, 0.5], [0.4, 0.9]])[:, :, None]
# Importance weights: 0.9/0.5, 0.8/0.25, 0.5/0.5, 1.0/0.8 = 1.8, 3.2, 1.0, 1.25.
LOGGED: dict[str, Any] = {"reward": REWARD, "action": ACTION, "pscore": PSCORE, "action_dist": DIST}


def test_point_estimates_match_the_hand_computation() -> None:
    assert ips(**LOGGED).value == pytest.approx((1.8 + 1.0) / 4)
    assert snips(**LOGGED).value == pytest.approx(2.8 / 7.25)
    # Policy means: 0.56, 0.26, 0.5, 0.4.
    assert dm(action_dist=DIST, estimated_rewards=QHAT).value == pytest.approx(1.72 / 4)
    # Corrections w * (r - q(a)): 0.72, -0.96, 0.5, -0.5.
    assert dr(**LOGGED, estimated_rewards=QHAT).value == pytest.approx(1.48 / 4)


def test_weight_cap_clips_ips_and_dr_weights_only() -> None:
    # lambda_ = 1.5 caps 1.8 and 3.2; only the rewarded round 0 changes IPS.
    assert ips(**LOGGED, lambda_=1.5).value == pytest.approx((1.5 + 1.0) / 4)
    # lambda_ = 2 caps round 1's weight 3.2: its DR term becomes 0.26 + 2 * -0.3.
    assert dr(**LOGGED, estimated_rewards=QHAT, lambda_=2.0).value == pytest.approx(1.84 / 4)
    # A cap above every weight changes nothing.
    assert ips(**LOGGED, lambda_=100.0).value == pytest.approx(ips(**LOGGED).value)


def test_positions_select_the_policy_slice_of_each_round() -> None:
    dist = np.zeros((4, 2, 2))
    dist[:, 0, 0] = 1.0  # position 0: always action 0
    dist[:, 1, 1] = 1.0  # position 1: always action 1
    position = np.array([0, 1, 1, 0])
    # Matches: round 0 (a=0 at 0), round 1 (a=1 at 1), round 2 (a=1 at 1), round 3 (a=0 at 0).
    value = ips(**{**LOGGED, "action_dist": dist}, position=position).value
    assert value == pytest.approx((1 / 0.5 + 0 + 1 / 0.5 + 0) / 4)
    # Without positions every round reads position 0, where round 1 and 2 do not match.
    assert ips(**{**LOGGED, "action_dist": dist}).value == pytest.approx((1 / 0.5) / 4)


def test_normal_intervals_use_the_standard_error_of_the_per_round_terms() -> None:
    terms = np.array([1.8, 0.0, 1.0, 0.0])
    estimate = ips(**LOGGED, alpha=0.1)
    assert estimate.se == pytest.approx(stats.sem(terms))
    z = stats.norm.ppf(0.95)
    assert estimate.ci == pytest.approx((0.7 - z * stats.sem(terms), 0.7 + z * stats.sem(terms)))


def test_snips_interval_is_the_delta_method_of_the_ratio() -> None:
    log = draw_log(make_world(), 500, np.random.default_rng(3))
    estimate = snips(
        reward=log.reward, action=log.action, pscore=log.pscore,
        action_dist=log.action_dist, position=log.position,
    )  # fmt: skip
    w = log.action_dist[np.arange(500), log.action, log.position] / log.pscore
    num, den = w * log.reward, w
    ratio = num.mean() / den.mean()
    cov = np.cov(num, den)  # ddof = 1
    variance = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / den.mean() ** 2
    assert estimate.value == pytest.approx(ratio)
    assert estimate.se == pytest.approx(math.sqrt(variance / 500))


def test_snips_is_nan_when_the_policy_never_takes_a_logged_action() -> None:
    dist = np.zeros_like(DIST)
    dist[:, 0, 0] = np.where(ACTION == 0, 0.0, 1.0)
    dist[:, 1, 0] = 1.0 - dist[:, 0, 0]
    estimate = snips(**{**LOGGED, "action_dist": dist})
    assert math.isnan(estimate.value) and math.isnan(estimate.ci[0])


def test_bootstrap_is_reproducible_and_close_to_the_normal_interval() -> None:
    log = draw_log(make_world(), 4000, np.random.default_rng(5))
    arrays = {
        "reward": log.reward, "action": log.action, "pscore": log.pscore,
        "action_dist": log.action_dist, "position": log.position,
    }  # fmt: skip
    first = ips(**arrays, n_bootstrap=400, rng=np.random.default_rng(1))
    again = ips(**arrays, n_bootstrap=400, rng=np.random.default_rng(1))
    other = ips(**arrays, n_bootstrap=400, rng=np.random.default_rng(2))
    normal = ips(**arrays)
    assert first == again and first.ci != other.ci
    assert first.value == normal.value
    assert first.se == pytest.approx(normal.se, rel=0.15)
    assert first.ci[0] == pytest.approx(normal.ci[0], abs=0.3 * normal.se)
    assert first.ci[1] == pytest.approx(normal.ci[1], abs=0.3 * normal.se)


def _coverage(n_reps: int, n: int, seed: int, **options: Any) -> dict[str, float]:
    world = make_world()
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(("ips", "snips", "dm", "dr"), 0)
    for _ in range(n_reps):
        log = draw_log(world, n, rng)
        # The true reward table as the model: DM's interval is honest only for a right model.
        estimates = estimate_all(
            reward=log.reward, action=log.action, pscore=log.pscore,
            action_dist=log.action_dist, position=log.position,
            estimated_rewards=log.true_rewards, rng=rng, **options,
        )  # fmt: skip
        for name, estimate in estimates.items():
            hits[name] += estimate.ci[0] <= world.truth <= estimate.ci[1]
    return {name: count / n_reps for name, count in hits.items()}


def test_analytic_95_intervals_cover_the_true_value() -> None:
    coverage = _coverage(300, 2000, seed=11)
    assert all(0.90 <= share <= 0.99 for share in coverage.values()), coverage


def test_bootstrap_95_intervals_cover_the_true_value() -> None:
    coverage = _coverage(300, 400, seed=12, n_bootstrap=100)
    assert all(0.90 <= share <= 0.99 for share in coverage.values()), coverage


def test_dr_with_the_built_in_model_covers_the_true_value() -> None:
    # The built-in model is misspecified here (no action-specific context slopes); DR's
    # interval stays honest because the propensities are right.
    world = make_world()
    rng = np.random.default_rng(13)
    hits, n_reps = 0, 300
    for _ in range(n_reps):
        log = draw_log(world, 1000, rng)
        estimate = estimate_all(
            reward=log.reward, action=log.action, pscore=log.pscore,
            action_dist=log.action_dist, position=log.position, context=log.context,
            folds=2, rng=rng,
        )["dr"]  # fmt: skip
        hits += estimate.ci[0] <= world.truth <= estimate.ci[1]
    assert 0.90 <= hits / n_reps <= 0.99


def test_estimate_all_fits_the_built_in_model_with_its_rng() -> None:
    log = draw_log(make_world(), 600, np.random.default_rng(4))
    arrays = {
        "reward": log.reward, "action": log.action, "pscore": log.pscore,
        "action_dist": log.action_dist, "position": log.position,
    }  # fmt: skip
    both = estimate_all(**arrays, context=log.context, rng=np.random.default_rng(9))
    q = cross_fit_rewards(
        log.context, log.action, log.position, log.reward,
        n_actions=4, len_list=2, rng=np.random.default_rng(9),
    )  # fmt: skip
    assert both["dm"] == dm(action_dist=log.action_dist, estimated_rewards=q, position=log.position)
    assert both["dr"] == dr(**arrays, estimated_rewards=q)
    assert both["ips"] == ips(**arrays) and both["snips"] == snips(**arrays)
    with pytest.raises(InvalidInput) as caught:
        estimate_all(**arrays)
    assert caught.value.field == "rng"


def _bad(**changes: Any) -> dict[str, Any]:
    return {**LOGGED, "estimated_rewards": QHAT, **changes}


BAD_INPUTS = [
    ("reward", _bad(reward=REWARD[:, None])),
    ("pscore", _bad(pscore=PSCORE[:3])),
    ("action", _bad(action=ACTION[:3])),
    ("action_dist", _bad(action_dist=DIST[:3])),
    ("estimated_rewards", _bad(estimated_rewards=QHAT[:, :1])),
    ("pscore", _bad(pscore=np.array([0.5, 0.0, 0.5, 0.8]))),
    ("pscore", _bad(pscore=np.array([0.5, 1.5, 0.5, 0.8]))),
    ("pscore", _bad(pscore=np.array([0.5, np.nan, 0.5, 0.8]))),
    ("action", _bad(action=np.array([0, 2, 1, 0]))),
    ("action", _bad(action=np.array([0, -1, 1, 0]))),
    ("action", _bad(action=np.array([0.0, 0.5, 1.0, 0.0]))),
    ("position", _bad(position=np.array([0, 1, 0, 0]))),
    ("action_dist", _bad(action_dist=DIST * 0.9)),
    ("action_dist", _bad(action_dist=np.concatenate([DIST[:, :1] + 0.2, DIST[:, 1:] - 0.2], 1))),
    ("reward", _bad(reward=np.array([1.0, np.inf, 0.0, 0.0]))),
    ("alpha", _bad(alpha=1.5)),
    ("lambda_", _bad(lambda_=0.0)),
    ("n_bootstrap", _bad(n_bootstrap=-1)),
    ("rng", _bad(n_bootstrap=10)),
]


@pytest.mark.parametrize(("field", "arguments"), BAD_INPUTS)
def test_bad_input_names_the_field(field: str, arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        dr(**arguments)
    assert caught.value.field == field
    assert field in str(caught.value) and "\n" not in str(caught.value)


def test_no_rounds_is_invalid_for_every_estimator() -> None:
    empty = np.zeros(0)
    dist = np.zeros((0, 2, 1))
    for call in (
        lambda: ips(reward=empty, action=empty, pscore=empty, action_dist=dist),
        lambda: snips(reward=empty, action=empty, pscore=empty, action_dist=dist),
        lambda: dm(action_dist=dist, estimated_rewards=dist),
    ):
        with pytest.raises(InvalidInput, match=r"no logged rounds|no rounds"):
            call()


def test_dm_validates_its_own_inputs() -> None:
    with pytest.raises(InvalidInput) as caught:
        dm(action_dist=DIST, estimated_rewards=QHAT, position=np.array([0, 0, 3, 0]))
    assert caught.value.field == "position"
    with pytest.raises(InvalidInput) as caught:
        dm(action_dist=DIST, estimated_rewards=QHAT[:2])
    assert caught.value.field == "estimated_rewards"
