"""mSPRT: the mixture likelihood ratio by quadrature, always-valid p-values and intervals."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from penchant.errors import InvalidInput
from penchant.experiments import ArmTotals, msprt

Floats = npt.NDArray[np.float64]


def quadrature_lr(difference: float, v: float, tau: float, null: float) -> float:
    """Lambda as its definition: the likelihood ratio of D ~ N(theta, v) against theta = null,
    averaged over theta ~ N(null, tau^2), integrated numerically."""

    def integrand(theta: float) -> float:
        log_ratio = stats.norm.logpdf(difference, theta, math.sqrt(v)) - stats.norm.logpdf(
            difference, null, math.sqrt(v)
        )
        return math.exp(log_ratio + stats.norm.logpdf(theta, null, tau))

    # The integrand's mass sits between the prior's centre and the data's; give quad both.
    centre = null + tau**2 / (tau**2 + v) * (difference - null)
    width = math.sqrt(tau**2 * v / (tau**2 + v))
    value, _ = integrate.quad(
        integrand, centre - 40 * width, centre + 40 * width, epsabs=0, epsrel=1e-13, limit=200
    )
    return float(value)


def test_likelihood_ratio_equals_the_integral_over_the_mixing_prior() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.5, 600), rng.normal(1.6, 2.0, 500)
    looks = np.array([30, 60, 150, 300, 500])
    result = msprt(ArmTotals.of(a, looks=looks), ArmTotals.of(b, looks=looks), tau=0.3, null=0.1)
    worst = 0.0
    for k, n in enumerate(looks):
        v = a[:n].var(ddof=1) / n + b[:n].var(ddof=1) / n
        expected = quadrature_lr(b[:n].mean() - a[:n].mean(), v, 0.3, 0.1)
        worst = max(worst, abs(result.likelihood_ratio[k] / expected - 1))
    assert worst < 1e-9
    assert result.likelihood_ratio[-1] > 20  # the data do move away from the null


def test_known_variances_and_unequal_arms() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 1.0, 400), rng.normal(0.2, 3.0, 900)
    looks_a, looks_b = np.array([40, 200, 400]), np.array([90, 450, 900])
    result = msprt(
        ArmTotals.of(a, looks=looks_a),
        ArmTotals.of(b, looks=looks_b),
        tau=0.5,
        variance=(1.0, 9.0),
    )
    for k in range(3):
        n_a, n_b = looks_a[k], looks_b[k]
        expected = quadrature_lr(b[:n_b].mean() - a[:n_a].mean(), 1 / n_a + 9 / n_b, 0.5, 0.0)
        assert result.likelihood_ratio[k] == pytest.approx(expected, rel=1e-9)


def test_p_values_are_the_running_minimum_of_one_over_lambda() -> None:
    rng = np.random.default_rng(2)
    looks = np.arange(10, 1001, 10)
    a, b = rng.normal(0.0, 1.0, 1000), rng.normal(0.15, 1.0, 1000)
    result = msprt(ArmTotals.of(a, looks=looks), ArmTotals.of(b, looks=looks), tau=0.2)
    expected = np.minimum.accumulate(np.minimum(1.0, 1.0 / result.likelihood_ratio))
    np.testing.assert_allclose(result.p_values, expected, rtol=1e-12)
    assert (np.diff(result.p_values) <= 0).all()
    low, high = result.ci_low, result.ci_high  # the running intersection only narrows
    assert (low[1:] >= low[:-1]).all() and (high[1:] <= high[:-1]).all()
    assert low[1] == -math.inf and math.isfinite(low[2])  # 30 units per arm before evidence


def test_interval_ends_are_where_lambda_reaches_one_over_alpha() -> None:
    rng = np.random.default_rng(3)
    a, b = ArmTotals.of(rng.normal(0.0, 1.0, 300)), ArmTotals.of(rng.normal(0.1, 1.0, 300))
    last = ArmTotals(a.n[-1:], a.total[-1:], a.total_sq[-1:])
    last_b = ArmTotals(b.n[-1:], b.total[-1:], b.total_sq[-1:])
    low, high = msprt(last, last_b, tau=0.25, alpha=0.1).ci
    for end in (low, high):
        at_end = msprt(last, last_b, tau=0.25, alpha=0.1, null=end)
        assert at_end.likelihood_ratio[-1] == pytest.approx(10.0, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(-0.5, 0.5), st.floats(0.05, 2.0))
def test_rejection_and_interval_agree(seed: int, effect: float, tau: float) -> None:
    """p <= alpha at a look exactly when the running interval excludes the null."""
    rng = np.random.default_rng(seed)
    looks = np.arange(25, 401, 25)
    a, b = rng.normal(0.0, 1.0, 400), rng.normal(effect, 1.0, 400)
    result = msprt(ArmTotals.of(a, looks=looks), ArmTotals.of(b, looks=looks), tau=tau)
    outside = ~((result.ci_low < 0.0) & (result.ci_high > 0.0))  # NaN (empty) is outside
    decided = np.abs(np.log(result.p_values) - math.log(0.05)) > 1e-9  # skip exact ties
    np.testing.assert_array_equal((result.p_values <= 0.05)[decided], outside[decided])
    assert ((result.p_values >= 0) & (result.p_values <= 1)).all()


def _peek(
    rng: np.random.Generator, runs: int, test: Callable[[Floats, Floats, Floats], bool]
) -> float:
    looks = np.arange(50, 1001, 50)
    return float(
        np.mean([test(rng.normal(0, 1, 1000), rng.normal(0, 1, 1000), looks) for _ in range(runs)])
    )


def test_peeking_at_aa_tests_keeps_msprt_within_alpha_but_not_a_z_test() -> None:
    runs = 1000

    def always_valid(a: Floats, b: Floats, looks: Floats) -> bool:
        result = msprt(ArmTotals.of(a, looks=looks), ArmTotals.of(b, looks=looks), tau=0.1)
        return result.first_rejection is not None

    def naive(a: Floats, b: Floats, looks: Floats) -> bool:
        n = looks.astype(int)
        ca, cb = np.cumsum(a)[n - 1] / n, np.cumsum(b)[n - 1] / n
        z = (cb - ca) / np.sqrt(2.0 / n)  # known unit variances: the kindest z-test
        return bool((np.abs(z) > stats.norm.isf(0.025)).any())

    msprt_rate = _peek(np.random.default_rng(4), runs, always_valid)
    naive_rate = _peek(np.random.default_rng(4), runs, naive)
    margin = 3 * math.sqrt(0.05 * 0.95 / runs)  # three Monte Carlo standard errors
    assert msprt_rate <= 0.05 + margin
    assert naive_rate > 0.15  # 20 peeks at a 5% test reject about a quarter of A/A tests


def test_looking_from_the_first_units_needs_the_burn_in() -> None:
    """With variances estimated from two or three units, chance small ones reject nulls."""

    def rate(min_units: int) -> float:
        rng = np.random.default_rng(7)
        rejected = 0
        for _ in range(600):
            a, b = ArmTotals.of(rng.normal(0, 1, 500)), ArmTotals.of(rng.normal(0, 1, 500))
            rejected += msprt(a, b, tau=1.0, min_units=min_units).first_rejection is not None
        return rejected / 600

    assert rate(30) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 600)
    assert rate(2) > 0.08  # about 0.14


def test_a_real_effect_is_found_and_covered() -> None:
    rng = np.random.default_rng(5)
    found = covered = 0
    for _ in range(200):
        a, b = rng.normal(0.0, 1.0, 2000), rng.normal(0.2, 1.0, 2000)
        looks = np.arange(100, 2001, 100)
        result = msprt(ArmTotals.of(a, looks=looks), ArmTotals.of(b, looks=looks), tau=0.2)
        found += result.first_rejection is not None
        covered += result.ci[0] < 0.2 < result.ci[1]
    assert found / 200 > 0.9
    assert covered / 200 >= 0.95  # always-valid intervals over-cover at a fixed look


def test_proportions_from_counts_equal_totals_of_zero_one_values() -> None:
    rng = np.random.default_rng(6)
    a, b = (rng.random(5000) < 0.10).astype(float), (rng.random(5000) < 0.12).astype(float)
    looks = np.array([500, 1000, 2500, 5000])
    from_counts = msprt(
        ArmTotals.of_counts(looks, np.cumsum(a)[looks - 1]),
        ArmTotals.of_counts(looks, np.cumsum(b)[looks - 1]),
        tau=0.02,
    )
    from_values = msprt(ArmTotals.of(a, looks=looks), ArmTotals.of(b, looks=looks), tau=0.02)
    np.testing.assert_allclose(from_counts.likelihood_ratio, from_values.likelihood_ratio)
    p_a, p_b = a[:5000].mean(), b[:5000].mean()
    v = p_a * (1 - p_a) * 5000 / 4999 / 5000 + p_b * (1 - p_b) * 5000 / 4999 / 5000
    expected = quadrature_lr(p_b - p_a, v, 0.02, 0.0)
    assert from_counts.likelihood_ratio[-1] == pytest.approx(expected, rel=1e-9)


def test_looks_without_evidence_leave_the_test_where_it_was() -> None:
    # One unit per arm: no variance yet. Then all zeros in both arms: no spread.
    control = ArmTotals.of_counts([1, 50, 400], [0, 0, 40])
    treatment = ArmTotals.of_counts([1, 50, 400], [1, 0, 70])
    result = msprt(control, treatment, tau=0.05)
    assert list(result.likelihood_ratio[:2]) == [1.0, 1.0]
    assert list(result.p_values[:2]) == [1.0, 1.0]
    assert result.ci_low[1] == -math.inf and result.ci_high[1] == math.inf
    assert math.isfinite(result.ci_low[2]) and result.p_values[2] < 1.0
    assert result.as_dict()["looks"] == 3


def test_arm_totals_of_values_at_looks() -> None:
    totals = ArmTotals.of([1.0, 2.0, 3.0, 4.0], looks=[2, 4])
    assert list(totals.n) == [2, 4]
    assert list(totals.total) == [3.0, 10.0]
    assert list(totals.total_sq) == [5.0, 30.0]
    assert list(ArmTotals.of([1.0, 2.0]).n) == [1, 2]


GOOD = ArmTotals.of([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: ArmTotals.of([]), "values"),
        (lambda: ArmTotals.of([1.0, math.nan]), "values"),
        (lambda: ArmTotals.of([1.0, 2.0], looks=[2, 1]), "looks"),
        (lambda: ArmTotals.of([1.0, 2.0], looks=[0, 2]), "looks"),
        (lambda: ArmTotals.of([1.0, 2.0], looks=[1, 3]), "looks"),
        (lambda: ArmTotals.of_counts([10, 20], [3, 21]), "successes"),
        (lambda: ArmTotals.of_counts([10, 5], [3, 4]), "n"),
        (lambda: ArmTotals([1, 2], [1.0], [1.0, 2.0]), "total"),
        (lambda: ArmTotals([1], [1.0], [-1.0]), "total_sq"),
        (lambda: msprt(GOOD, ArmTotals.of([1.0, 2.0]), tau=0.1), "treatment"),
        (lambda: msprt(GOOD, GOOD, tau=0.0), "tau"),
        (lambda: msprt(GOOD, GOOD, tau=math.nan), "tau"),
        (lambda: msprt(GOOD, GOOD, tau=0.1, alpha=0.0), "alpha"),
        (lambda: msprt(GOOD, GOOD, tau=0.1, null=math.inf), "null"),
        (lambda: msprt(GOOD, GOOD, tau=0.1, variance=(1.0, -1.0)), "variance"),
        (lambda: msprt(GOOD, GOOD, tau=0.1, variance=(1.0,)), "variance"),
        (lambda: msprt(GOOD, GOOD, tau=0.1, min_units=0), "min_units"),
    ],
)
def test_bad_input_names_the_argument(call: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()
    assert caught.value.field == field
