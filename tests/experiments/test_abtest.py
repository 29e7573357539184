"""A/B test statistics against statsmodels, scipy and hand-written twins of each formula."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from penchant.errors import InvalidInput
from penchant.evaluation import stats as evaluation_stats
from penchant.experiments import (
    Comparison,
    bootstrap,
    cuped,
    holm,
    ratio_metric,
    sample_ratio_mismatch,
    srm_suspected,
    two_proportions,
    welch,
)

Floats = npt.NDArray[np.float64]
RTOL, ATOL = 1e-9, 1e-12


def close(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def compare_means(treatment: Floats, control: Floats) -> CompareMeans:
    return CompareMeans(DescrStatsW(treatment), DescrStatsW(control))


# --- two proportions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_b", "n_b", "alpha"),
    [
        (120, 1000, 150, 1000, 0.05),
        (3, 40, 9, 35, 0.05),
        (4_812, 100_000, 5_020, 101_300, 0.01),
        (700, 800, 650, 820, 0.1),
        (1, 2, 2, 3, 0.2),
    ],
)
def test_two_proportions_match_statsmodels(
    s_a: int, n_a: int, s_b: int, n_b: int, alpha: float
) -> None:
    result = two_proportions(s_a, n_a, s_b, n_b, alpha=alpha)
    # statsmodels compares its first sample with its second: B first, so B - A.
    _, p_value = proportions_ztest([s_b, s_a], [n_b, n_a])
    diff_ci = confint_proportions_2indep(s_b, n_b, s_a, n_a, method="wald", alpha=alpha)
    ratio_ci = confint_proportions_2indep(
        s_b, n_b, s_a, n_a, compare="ratio", method="log", alpha=alpha
    )
    close(result.p_value, p_value)
    close(result.diff_ci, diff_ci)
    close(result.lift_ci, np.asarray(ratio_ci) - 1.0)
    close([result.control, result.treatment], [s_a / n_a, s_b / n_b])
    close(result.lift, (s_b / n_b) / (s_a / n_a) - 1.0)
    assert (result.n_control, result.n_treatment, result.alpha) == (n_a, n_b, alpha)


def test_two_proportions_without_successes_in_an_arm() -> None:
    none_in_control = two_proportions(0, 100, 5, 100)
    assert math.isnan(none_in_control.lift)
    assert all(math.isnan(v) for v in none_in_control.lift_ci)
    none_in_treatment = two_proportions(5, 100, 0, 100)
    assert none_in_treatment.lift == -1.0
    assert all(math.isnan(v) for v in none_in_treatment.lift_ci)
    # No success anywhere: no evidence of a difference, and a zero-width interval at 0.
    nothing = two_proportions(0, 100, 0, 50)
    assert nothing.p_value == 1.0
    assert nothing.diff_ci == (0.0, 0.0)
    assert two_proportions(10, 10, 20, 20).p_value == 1.0


# --- Welch ------------------------------------------------------------------------------


def _samples(seed: int, n_a: int, n_b: int) -> tuple[Floats, Floats]:
    rng = np.random.default_rng(seed)
    return rng.lognormal(1.0, 0.8, n_a), rng.lognormal(1.1, 1.0, n_b)


@pytest.mark.parametrize(
    ("seed", "n_a", "n_b", "alpha"), [(0, 300, 200, 0.05), (1, 12, 40, 0.01), (2, 5000, 5000, 0.1)]
)
def test_welch_matches_scipy_and_statsmodels(seed: int, n_a: int, n_b: int, alpha: float) -> None:
    a, b = _samples(seed, n_a, n_b)
    result = welch(a, b, alpha=alpha)
    close(result.p_value, stats.ttest_ind(b, a, equal_var=False).pvalue)
    close(result.diff_ci, compare_means(b, a).tconfint_diff(alpha=alpha, usevar="unequal"))
    close(result.difference, b.mean() - a.mean())
    assert result.diff_ci[0] < result.difference < result.diff_ci[1]


def test_welch_lift_interval_is_the_delta_method() -> None:
    a, b = _samples(3, 400, 300)
    result = welch(a, b, alpha=0.1)
    # Another form of the same first-order variance: ratio^2 times the sum of squared
    # coefficients of variation of the two means.
    ratio = b.mean() / a.mean()
    cv2 = (DescrStatsW(a).std_mean / a.mean()) ** 2 + (DescrStatsW(b).std_mean / b.mean()) ** 2
    half = stats.norm.ppf(0.95) * ratio * math.sqrt(cv2)
    close(result.lift, ratio - 1.0)
    close(result.lift_ci, [ratio - 1.0 - half, ratio - 1.0 + half])


def test_welch_lift_interval_covers_the_true_lift() -> None:
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(400):
        lift_ci = welch(rng.exponential(2.0, 300), rng.exponential(2.2, 300)).lift_ci
        hits += lift_ci[0] <= 0.1 <= lift_ci[1]
    assert 0.92 <= hits / 400 <= 0.98


def test_welch_with_constant_arms() -> None:
    same = welch([1.0, 1.0, 1.0], [1.0, 1.0])
    assert (same.p_value, same.diff_ci) == (1.0, (0.0, 0.0))
    apart = welch([1.0, 1.0, 1.0], [2.0, 2.0])
    assert (apart.p_value, apart.diff_ci) == (0.0, (1.0, 1.0))


# --- ratio metrics ------------------------------------------------------------------------


def _users(
    rng: np.random.Generator, n: int, ctr_mean: float, concentration: float = 20.0
) -> tuple[Floats, Floats]:
    """Clicks and impressions per user: CTR varies by user, so impressions are clustered."""
    impressions = 1 + rng.poisson(4.0, n)
    ctr = rng.beta(ctr_mean * concentration, (1 - ctr_mean) * concentration, n)
    return rng.binomial(impressions, ctr).astype(float), impressions.astype(float)


def _deng_variance(y: Floats, x: Floats) -> float:
    """Deng et al.'s Var(mean y / mean x) from the sample moments, without residuals."""
    n = y.shape[0]
    mean_y, mean_x = y.mean(), x.mean()
    cov = np.cov(y, x)  # ddof = 1
    return float(
        (
            cov[0, 0] / mean_x**2
            - 2 * mean_y * cov[0, 1] / mean_x**3
            + mean_y**2 * cov[1, 1] / mean_x**4
        )
        / n
    )


def test_ratio_metric_variance_matches_the_moment_formula() -> None:
    rng = np.random.default_rng(5)
    y_a, x_a = _users(rng, 800, 0.10)
    y_b, x_b = _users(rng, 700, 0.12)
    result = ratio_metric(y_a, x_a, y_b, x_b, alpha=0.05)
    r_a, r_b = y_a.sum() / x_a.sum(), y_b.sum() / x_b.sum()
    var_a, var_b = _deng_variance(y_a, x_a), _deng_variance(y_b, x_b)
    se = math.sqrt(var_a + var_b)
    z = stats.norm.ppf(0.975)
    close([result.control, result.treatment, result.difference], [r_a, r_b, r_b - r_a])
    close(result.diff_ci, [r_b - r_a - z * se, r_b - r_a + z * se])
    close(result.p_value, 2 * stats.norm.sf(abs(r_b - r_a) / se))
    lift_se = math.sqrt(var_b / r_a**2 + r_b**2 * var_a / r_a**4)
    close(result.lift_ci, [r_b / r_a - 1 - z * lift_se, r_b / r_a - 1 + z * lift_se])


def test_ratio_metric_with_unit_denominators_is_the_two_sample_z_test() -> None:
    a, b = _samples(6, 500, 450)
    result = ratio_metric(a, np.ones_like(a), b, np.ones_like(b), alpha=0.1)
    cm = compare_means(b, a)
    close(result.p_value, cm.ztest_ind(usevar="unequal")[1])
    close(result.diff_ci, cm.zconfint_diff(alpha=0.1, usevar="unequal"))


def test_ratio_metric_intervals_cover_the_true_ratios() -> None:
    rng = np.random.default_rng(7)
    diff_hits = lift_hits = 0
    for _ in range(400):
        y_a, x_a = _users(rng, 1000, 0.10)
        y_b, x_b = _users(rng, 1000, 0.12)
        result = ratio_metric(y_a, x_a, y_b, x_b)
        diff_hits += result.diff_ci[0] <= 0.02 <= result.diff_ci[1]
        lift_hits += result.lift_ci[0] <= 0.2 <= result.lift_ci[1]
    assert 0.92 <= diff_hits / 400 <= 0.98
    assert 0.92 <= lift_hits / 400 <= 0.98


# --- bootstrap ----------------------------------------------------------------------------


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_bootstrap_matches_scipy_on_the_same_resamples(statistic: str) -> None:
    a, b = _samples(8, 150, 120)
    of = {"mean": np.mean, "median": np.median}[statistic]
    result = bootstrap(a, b, statistic=statistic, n_resamples=3000, alpha=0.1, rng=11)

    def theirs(fn: Callable[..., Any]) -> Any:
        # The same seed draws the same resamples, so the two statistics pair up.
        return stats.bootstrap(
            (a, b), fn, n_resamples=3000, confidence_level=0.9, method="percentile", rng=11
        )

    diff = theirs(lambda x, y, axis: of(y, axis=axis) - of(x, axis=axis))
    lift = theirs(lambda x, y, axis: of(y, axis=axis) / of(x, axis=axis) - 1)
    close(result.diff_ci, diff.confidence_interval)
    close(result.lift_ci, lift.confidence_interval)
    below = np.mean(diff.bootstrap_distribution <= 0)
    above = np.mean(diff.bootstrap_distribution >= 0)
    close(result.p_value, max(min(1.0, 2 * min(below, above)), 1 / 3000))
    close(result.difference, of(b) - of(a))


def test_bootstrap_agrees_with_welch_on_large_samples() -> None:
    a, b = _samples(9, 4000, 4000)
    boot, exact = bootstrap(a, b, n_resamples=4000, rng=np.random.default_rng(0)), welch(a, b)
    # Each end moves by about 0.003 between seeds here (sd of the end at 4,000 resamples).
    assert boot.diff_ci == pytest.approx(exact.diff_ci, abs=0.015)
    assert boot.lift_ci == pytest.approx(exact.lift_ci, abs=0.01)
    assert boot.p_value == pytest.approx(exact.p_value, abs=0.02)


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    a, b = _samples(10, 50, 60)
    assert bootstrap(a, b, rng=3) == bootstrap(a, b, rng=3)


# --- CUPED --------------------------------------------------------------------------------


def _pre_post(seed: int, n: int, effect: float) -> tuple[Floats, Floats, Floats, Floats]:
    rng = np.random.default_rng(seed)
    x_a, x_b = rng.normal(5.0, 1.0, n), rng.normal(5.0, 1.0, n)
    y_a = 1.0 + 0.6 * x_a + rng.normal(0.0, 0.8, n)
    y_b = 1.0 + effect + 0.6 * x_b + rng.normal(0.0, 0.8, n)
    return y_a, x_a, y_b, x_b


def test_cuped_theta_is_the_ols_slope_and_welch_runs_on_the_adjusted_values() -> None:
    y_a, x_a, y_b, x_b = _pre_post(12, 3000, 0.05)
    result = cuped(y_a, x_a, y_b, x_b, alpha=0.05)
    x, y = np.concatenate([x_a, x_b]), np.concatenate([y_a, y_b])
    slope = sm.OLS(y, sm.add_constant(x)).fit().params[1]
    close(result.theta, slope)
    adj_a, adj_b = y_a - slope * (x_a - x.mean()), y_b - slope * (x_b - x.mean())
    c = result.comparison
    close(c.p_value, stats.ttest_ind(adj_b, adj_a, equal_var=False).pvalue)
    close(c.diff_ci, compare_means(adj_b, adj_a).tconfint_diff(usevar="unequal"))
    close([c.control, c.treatment], [adj_a.mean(), adj_b.mean()])
    raw_se = compare_means(y_b, y_a).std_meandiff_separatevar
    adjusted_se = compare_means(adj_b, adj_a).std_meandiff_separatevar
    close(result.variance_reduction, 1 - (adjusted_se / raw_se) ** 2)


def test_cuped_variance_reduction_is_about_the_squared_correlation() -> None:
    y_a, x_a, y_b, x_b = _pre_post(13, 20_000, 0.05)
    result = cuped(y_a, x_a, y_b, x_b)
    rho = np.corrcoef(np.concatenate([x_a, x_b]), np.concatenate([y_a, y_b]))[0, 1]
    # Within-arm variances against the pooled correlation: the 0.05 effect dilutes the
    # pooled correlation by ~0.0004, and the two arms' sample correlations differ from the
    # pooled one by ~0.004 (its standard error at 20,000 units); 0.01 holds both.
    assert result.variance_reduction == pytest.approx(rho**2, abs=0.01)
    assert rho**2 == pytest.approx(0.36, abs=0.02)
    plain = welch(y_a, y_b)
    assert result.comparison.diff_ci[1] - result.comparison.diff_ci[0] < 0.85 * (
        plain.diff_ci[1] - plain.diff_ci[0]
    )


def test_cuped_lift_interval_is_the_delta_method_with_the_covariance() -> None:
    y_a, x_a, y_b, x_b = _pre_post(14, 2000, 0.2)
    result = cuped(y_a, x_a, y_b, x_b, alpha=0.1)
    x = np.concatenate([x_a, x_b])
    adj_a = y_a - result.theta * (x_a - x.mean())
    adj_b = y_b - result.theta * (x_b - x.mean())
    # The covariance matrix of (mean adj_a, mean adj_b, mean y_a), then the gradient of
    # (mean adj_b - mean adj_a) / mean y_a.
    n_a, n_b = y_a.shape[0], y_b.shape[0]
    cov_a = np.cov(np.vstack([adj_a, y_a])) / n_a
    sigma = np.array(
        [
            [cov_a[0, 0], 0.0, cov_a[0, 1]],
            [0.0, adj_b.var(ddof=1) / n_b, 0.0],
            [cov_a[1, 0], 0.0, cov_a[1, 1]],
        ]
    )
    d, m = adj_b.mean() - adj_a.mean(), y_a.mean()
    gradient = np.array([-1 / m, 1 / m, -d / m**2])
    half = stats.norm.ppf(0.95) * math.sqrt(gradient @ sigma @ gradient)
    close(result.comparison.lift, d / m)
    close(result.comparison.lift_ci, [d / m - half, d / m + half])


def test_cuped_with_a_constant_covariate_is_welch() -> None:
    a, b = _samples(15, 100, 90)
    result = cuped(a, np.ones_like(a), b, np.ones_like(b))
    plain = welch(a, b)
    assert (result.theta, result.variance_reduction) == (0.0, 0.0)
    close(result.comparison.diff_ci, plain.diff_ci)
    close(result.comparison.p_value, plain.p_value)


# --- SRM and Holm -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "shares"),
    [([5000, 5100], [1, 1]), ([9_811, 10_190], [0.5, 0.5]), ([480, 2_100, 2_350], [1, 4, 5])],
)
def test_sample_ratio_mismatch_matches_scipy(counts: list[int], shares: list[float]) -> None:
    chi2, p_value = sample_ratio_mismatch(counts, shares)
    expected = np.sum(counts) * np.asarray(shares) / np.sum(shares)
    theirs = stats.chisquare(counts, expected)
    close([chi2, p_value], [theirs.statistic, theirs.pvalue])


def test_srm_suspected_uses_a_strict_threshold() -> None:
    _, healthy = sample_ratio_mismatch([5000, 5100], [1, 1])
    _, broken = sample_ratio_mismatch([5000, 5400], [1, 1])
    assert not srm_suspected(healthy)
    assert srm_suspected(broken)
    assert not srm_suspected(0.01)
    assert srm_suspected(0.01, threshold=0.05)


def test_holm_matches_statsmodels_and_is_the_one_evaluation_uses() -> None:
    raw = np.random.default_rng(16).random(9) ** 2
    close(holm(raw.tolist()), multipletests(raw, method="holm")[1])
    assert evaluation_stats.holm is holm


# --- properties ---------------------------------------------------------------------------


@st.composite
def proportion_arms(draw: st.DrawFn) -> tuple[int, int, int, int]:
    n_a, n_b = draw(st.integers(1, 10**6)), draw(st.integers(1, 10**6))
    return draw(st.integers(0, n_a)), n_a, draw(st.integers(0, n_b)), n_b


def _check(result: Comparison, swapped: Comparison) -> None:
    assert 0.0 <= result.p_value <= 1.0
    assert result.diff_ci[0] <= result.difference <= result.diff_ci[1]
    if not math.isnan(result.lift_ci[0]):
        assert result.lift_ci[0] <= result.lift + 1e-12 and result.lift <= result.lift_ci[1] + 1e-12
    assert swapped.difference == pytest.approx(-result.difference, abs=1e-12)
    assert swapped.diff_ci == pytest.approx((-result.diff_ci[1], -result.diff_ci[0]), abs=1e-12)
    assert swapped.p_value == pytest.approx(result.p_value, rel=1e-9, abs=1e-300)


@settings(max_examples=150, deadline=None)
@given(proportion_arms())
def test_two_proportions_properties(arms: tuple[int, int, int, int]) -> None:
    s_a, n_a, s_b, n_b = arms
    _check(two_proportions(s_a, n_a, s_b, n_b), two_proportions(s_b, n_b, s_a, n_a))


values = st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=30)


@settings(max_examples=150, deadline=None)
@given(values, values)
def test_welch_properties(a: list[float], b: list[float]) -> None:
    _check(welch(a, b), welch(b, a))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 50), st.floats(0.5, 20)), min_size=2, max_size=30),
    st.lists(st.tuples(st.floats(0, 50), st.floats(0.5, 20)), min_size=2, max_size=30),
)
def test_ratio_metric_properties(
    a: list[tuple[float, float]], b: list[tuple[float, float]]
) -> None:
    (y_a, x_a), (y_b, x_b) = zip(*a, strict=True), zip(*b, strict=True)
    _check(ratio_metric(y_a, x_a, y_b, x_b), ratio_metric(y_b, x_b, y_a, x_a))


def test_as_dict_is_strict_json() -> None:
    result = cuped([0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0])
    data = result.as_dict()
    assert data["lift"] is None  # the control mean is 0
    decoded = json.loads(json.dumps(data, allow_nan=False))
    assert decoded["method"] == "cuped welch t-test"
    assert set(decoded) >= {"diff_ci", "lift_ci", "p_value", "theta", "variance_reduction"}
    assert json.loads(json.dumps(two_proportions(1, 2, 1, 3).as_dict(), allow_nan=False))


# --- bad input ----------------------------------------------------------------------------

GOOD = [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: two_proportions(-1, 10, 1, 10), "successes_a"),
        (lambda: two_proportions(11, 10, 1, 10), "successes_a"),
        (lambda: two_proportions(1, 10, 1, 0), "n_b"),
        (lambda: two_proportions(1.5, 10, 1, 10), "successes_a"),
        (lambda: two_proportions(1, 10, 1, 10, alpha=1.0), "alpha"),
        (lambda: welch([], GOOD), "a"),
        (lambda: welch(GOOD, [1.0]), "b"),
        (lambda: welch(GOOD, [1.0, math.nan]), "b"),
        (lambda: welch(GOOD, GOOD, alpha=math.nan), "alpha"),
        (lambda: welch(GOOD, [[1.0, 2.0]]), "b"),
        (lambda: ratio_metric(GOOD, [1.0, 1.0], GOOD, GOOD), "denominators_a"),
        (lambda: ratio_metric(GOOD, GOOD, GOOD, [1.0, -1.0, 1.0]), "denominators_b"),
        (lambda: ratio_metric(GOOD, [0.0, 0.0, 0.0], GOOD, GOOD), "denominators_a"),
        (lambda: bootstrap(GOOD, GOOD, rng=0, n_resamples=0), "n_resamples"),
        (lambda: bootstrap(GOOD, GOOD, rng=0, statistic="mode"), "statistic"),
        (lambda: cuped(GOOD, [1.0, 2.0], GOOD, GOOD), "x_a"),
        (lambda: cuped(GOOD, GOOD, GOOD, [1.0, math.inf, 2.0]), "x_b"),
        (lambda: sample_ratio_mismatch([10, -1], [1, 1]), "counts"),
        (lambda: sample_ratio_mismatch([10], [1]), "counts"),
        (lambda: sample_ratio_mismatch([10, 2.5], [1, 1]), "counts"),
        (lambda: sample_ratio_mismatch([0, 0], [1, 1]), "counts"),
        (lambda: sample_ratio_mismatch([10, 10], [1, 0]), "expected_shares"),
        (lambda: sample_ratio_mismatch([10, 10], [1, 1, 1]), "expected_shares"),
        (lambda: srm_suspected(1.5), "p_value"),
        (lambda: srm_suspected(0.5, threshold=0.0), "threshold"),
        (lambda: holm([0.5, math.nan]), "p_values"),
    ],
)
def test_bad_input_names_the_argument(call: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()
    assert caught.value.field == field
