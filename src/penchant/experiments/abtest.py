"""A/B test statistics: proportions, means, ratio metrics, bootstrap and CUPED.

Every comparison reads treatment B against control A and returns a `Comparison`: the
difference `B - A` and the relative lift `(B - A) / A`, each with a two-sided `1 - alpha`
interval, and a two-sided p-value for "no difference". Arms are independent samples of
units (users, sessions); a unit's value may itself be an aggregate of its events, which is
why ratio metrics get their own delta-method variance. Whether the split can be trusted
(sample ratio mismatch) and Holm's correction across metrics are in
`penchant.experiments.validity`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from penchant.errors import InvalidInput
from penchant.experiments import ope_checks as checks
from penchant.experiments.ope_checks import FloatArray

#: Resampled values drawn at once by the bootstrap (32 MiB of float64), whatever the arm sizes.
_CHUNK_CELLS = 1 << 22
_NAN_PAIR = (math.nan, math.nan)

JsonValue = str | int | float | None | list[float | None]


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Comparison:
    """Treatment B compared with control A on one metric.

    Attributes:
        control: A's mean or rate.
        treatment: B's mean or rate.
        difference: `treatment - control`.
        diff_ci: `(low, high)`, the two-sided `1 - alpha` interval of the difference.
        lift: `(treatment - control) / control`; NaN when the control is 0.
        lift_ci: `(low, high)`, the interval of the lift; NaN where it cannot be formed.
        p_value: two-sided p-value of "no difference"; NaN where the method gives none.
        n_control: units in A.
        n_treatment: units in B.
        method: how the numbers were computed, e.g. `"welch t-test"`.
        alpha: one minus the intervals' coverage.
    """

    control: float
    treatment: float
    difference: float
    diff_ci: tuple[float, float]
    lift: float
    lift_ci: tuple[float, float]
    p_value: float
    n_control: int
    n_treatment: int
    method: str
    alpha: float

    def as_dict(self) -> dict[str, JsonValue]:
        """The fields as JSON values: intervals become lists, NaN and infinities None."""
        out: dict[str, JsonValue] = {}
        for key, value in asdict(self).items():
            if isinstance(value, tuple):
                out[key] = [_json_float(v) for v in value]
            elif isinstance(value, float):
                out[key] = _json_float(value)
            else:
                out[key] = value
        return out


@dataclass(frozen=True)
class CupedComparison:
    """A CUPED-adjusted comparison and what the adjustment did.

    Attributes:
        comparison: Welch's comparison of the adjusted values. `control` and `treatment`
            are the adjusted means; `lift` is the adjusted difference over the unadjusted
            control mean.
        theta: the pooled regression slope of the metric on the covariate.
        variance_reduction: `1 - Var(D') / Var(D)`, the share of the difference's
            estimated sampling variance removed by the adjustment (D' adjusted, D raw);
            NaN when the raw variance is 0.
    """

    comparison: Comparison
    theta: float
    variance_reduction: float

    def as_dict(self) -> dict[str, JsonValue]:
        """The comparison's fields plus `theta` and `variance_reduction`, for JSON."""
        out = self.comparison.as_dict()
        out["theta"] = _json_float(self.theta)
        out["variance_reduction"] = _json_float(self.variance_reduction)
        return out


# --- validation -------------------------------------------------------------------------


def _alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:  # also false for NaN
        raise InvalidInput(f"alpha must lie in (0, 1), got {alpha}", field="alpha")
    return float(alpha)


def _count(value: int, field: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} must be a whole number, got {value!r}", field=field) from exc
    if not (math.isfinite(number) and number >= 0.0 and number.is_integer()):
        raise InvalidInput(f"{field} must be a whole number >= 0, got {value!r}", field=field)
    return int(number)


def _units(values: npt.ArrayLike, field: str) -> FloatArray:
    """Per-unit values: finite, one-dimensional, at least two (a variance needs two)."""
    out = checks.floats(values, field, ndim=1)
    if out.shape[0] < 2:
        raise InvalidInput(f"{field} needs at least 2 units, got {out.shape[0]}", field=field)
    return out


def _paired(values: npt.ArrayLike, field: str, n: int, reference: str) -> FloatArray:
    out = checks.floats(values, field, ndim=1)
    if out.shape[0] != n:
        raise InvalidInput(f"{field} has {out.shape[0]} units but {reference} has {n}", field=field)
    return out


# --- shared arithmetic ------------------------------------------------------------------


def _z(alpha: float) -> float:
    return float(stats.norm.isf(alpha / 2.0))


def _normal_ci(value: float, se: float, alpha: float) -> tuple[float, float]:
    half = _z(alpha) * se
    return value - half, value + half


def _normal_p(difference: float, se: float) -> float:
    """Two-sided normal p-value; with no spread, 1 for no difference and 0 for any."""
    if se == 0.0:
        return 1.0 if difference == 0.0 else 0.0
    return float(2.0 * stats.norm.sf(abs(difference) / se))


def _delta_lift(
    control: float, treatment: float, se_control: float, se_treatment: float, alpha: float
) -> tuple[float, tuple[float, float]]:
    """`treatment / control - 1` with its delta-method normal interval (independent arms).

    Var(T / C) ~ (Var(T) + (T / C)^2 Var(C)) / C^2, from the first-order Taylor expansion
    of T / C around the two estimates; computed from standard errors, never squaring C.
    """
    if control == 0.0:
        return math.nan, _NAN_PAIR
    ratio = treatment / control
    if not math.isfinite(ratio):
        return math.nan, _NAN_PAIR
    se = math.hypot(se_treatment, ratio * se_control) / abs(control)
    return ratio - 1.0, _normal_ci(ratio - 1.0, se, alpha)


def _standard_error(values: FloatArray) -> float:
    return float(values.std(ddof=1)) / math.sqrt(values.shape[0])


def _welch_core(
    a: FloatArray, b: FloatArray, alpha: float
) -> tuple[float, tuple[float, float], float, float, float]:
    """Difference of means, its Welch interval and p-value, and each mean's standard error."""
    se_a, se_b = _standard_error(a), _standard_error(b)
    difference = float(b.mean()) - float(a.mean())
    se = math.hypot(se_a, se_b)
    if se == 0.0:  # both arms constant: the data leave no doubt about the difference
        return difference, (difference, difference), _normal_p(difference, se), se_a, se_b
    # Welch-Satterthwaite degrees of freedom, from shares of the variance (no underflow).
    share_a, share_b = (se_a / se) ** 2, (se_b / se) ** 2
    df = 1.0 / (share_a**2 / (a.shape[0] - 1) + share_b**2 / (b.shape[0] - 1))
    p_value = float(2.0 * stats.t.sf(abs(difference) / se, df))
    half = float(stats.t.isf(alpha / 2.0, df)) * se
    return difference, (difference - half, difference + half), p_value, se_a, se_b


# --- comparisons ------------------------------------------------------------------------


def two_proportions(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, alpha: float = 0.05
) -> Comparison:
    """Compare two conversion rates.

    - p-value: the pooled two-proportion z-test, `z = (p_b - p_a) / sqrt(p (1 - p)
      (1/n_a + 1/n_b))` with `p` the pooled rate (1 when both arms are all 0 or all 1).
    - difference interval: Wald, unpooled, `p_b - p_a ± z sqrt(p_a (1 - p_a) / n_a +
      p_b (1 - p_b) / n_b)`.
    - lift interval: the log method for the risk ratio `p_b / p_a`,
      `exp(log(p_b / p_a) ± z sqrt(1/s_b - 1/n_b + 1/s_a - 1/n_a))`, minus 1; NaN when
      either arm has no success.

    Args:
        successes_a: conversions in the control arm.
        n_a: units in the control arm (at least 1).
        successes_b: conversions in the treatment arm.
        n_b: units in the treatment arm (at least 1).
        alpha: one minus the intervals' coverage.

    Returns:
        The comparison, `method="two-proportion z-test"`.

    Raises:
        InvalidInput: a count that is negative or not whole, an empty arm, more successes
            than units, or alpha outside (0, 1).
    """
    alpha = _alpha(alpha)
    s_a, s_b = _count(successes_a, "successes_a"), _count(successes_b, "successes_b")
    m_a, m_b = _count(n_a, "n_a"), _count(n_b, "n_b")
    for s, m, name in ((s_a, m_a, "a"), (s_b, m_b, "b")):
        if m == 0:
            raise InvalidInput(f"n_{name} must be at least 1", field=f"n_{name}")
        if s > m:
            raise InvalidInput(
                f"successes_{name} = {s} exceeds n_{name} = {m}", field=f"successes_{name}"
            )
    p_a, p_b = s_a / m_a, s_b / m_b
    difference = p_b - p_a
    pooled = (s_a + s_b) / (m_a + m_b)
    p_value = _normal_p(difference, math.sqrt(pooled * (1.0 - pooled) * (1.0 / m_a + 1.0 / m_b)))
    se = math.sqrt(p_a * (1.0 - p_a) / m_a + p_b * (1.0 - p_b) / m_b)
    lift = p_b / p_a - 1.0 if s_a > 0 else math.nan
    lift_ci = _NAN_PAIR
    if s_a > 0 and s_b > 0:
        log_ratio = math.log(p_b / p_a)
        half = _z(alpha) * math.sqrt(1.0 / s_b - 1.0 / m_b + 1.0 / s_a - 1.0 / m_a)
        lift_ci = (math.exp(log_ratio - half) - 1.0, math.exp(log_ratio + half) - 1.0)
    return Comparison(
        control=p_a,
        treatment=p_b,
        difference=difference,
        diff_ci=_normal_ci(difference, se, alpha),
        lift=lift,
        lift_ci=lift_ci,
        p_value=p_value,
        n_control=m_a,
        n_treatment=m_b,
        method="two-proportion z-test",
        alpha=alpha,
    )


def welch(a: npt.ArrayLike, b: npt.ArrayLike, *, alpha: float = 0.05) -> Comparison:
    """Compare two means with Welch's unequal-variance t-test.

    The difference's interval is `mean_b - mean_a ± t(df) se` with the Welch-Satterthwaite
    degrees of freedom. The lift's interval is a delta-method normal interval: with
    `v_a = s_a^2 / n_a` and `v_b = s_b^2 / n_b` the two means' variances,
    `Var(mean_b / mean_a) ~ v_b / mean_a^2 + mean_b^2 v_a / mean_a^4` (arms independent).
    When both arms are constant the p-value is 1 for equal constants and 0 otherwise.

    Args:
        a: per-unit values of the control arm (at least 2).
        b: per-unit values of the treatment arm (at least 2).
        alpha: one minus the intervals' coverage.

    Returns:
        The comparison, `method="welch t-test"`.

    Raises:
        InvalidInput: an arm with fewer than 2 values, a NaN or infinite value, or alpha
            outside (0, 1).
    """
    alpha = _alpha(alpha)
    x, y = _units(a, "a"), _units(b, "b")
    difference, diff_ci, p_value, se_a, se_b = _welch_core(x, y, alpha)
    control, treatment = float(x.mean()), float(y.mean())
    lift, lift_ci = _delta_lift(control, treatment, se_a, se_b, alpha)
    return Comparison(
        control=control,
        treatment=treatment,
        difference=difference,
        diff_ci=diff_ci,
        lift=lift,
        lift_ci=lift_ci,
        p_value=p_value,
        n_control=x.shape[0],
        n_treatment=y.shape[0],
        method="welch t-test",
        alpha=alpha,
    )


def _ratio_arm(
    numerators: npt.ArrayLike, denominators: npt.ArrayLike, arm: str
) -> tuple[float, float, int]:
    """One arm's ratio of sums, its delta-method standard error and its number of units."""
    y = _units(numerators, f"numerators_{arm}")
    x = _paired(denominators, f"denominators_{arm}", y.shape[0], f"numerators_{arm}")
    if (x < 0.0).any():
        raise InvalidInput(
            f"denominators_{arm} must be >= 0, got {x.min()}", field=f"denominators_{arm}"
        )
    total = float(x.sum())
    if total <= 0.0:
        raise InvalidInput(f"denominators_{arm} sum to 0: no ratio", field=f"denominators_{arm}")
    n = y.shape[0]
    ratio = float(y.sum()) / total
    # Linearization: R = mean(y) / mean(x) moves like mean(y - R x) / mean(x), whose terms
    # have mean zero by construction, so their sum of squares over n - 1 is their variance.
    residual = y - ratio * x
    se = math.sqrt(float(residual @ residual) / (n - 1) / n) / (total / n)
    return ratio, se, n


def ratio_metric(
    numerators_a: npt.ArrayLike,
    denominators_a: npt.ArrayLike,
    numerators_b: npt.ArrayLike,
    denominators_b: npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> Comparison:
    """Compare a ratio metric whose unit of randomization is coarser than its denominator.

    For click-through rate with users randomized, each user contributes clicks (numerator)
    and impressions (denominator), and an arm's CTR is `R = sum(y) / sum(x)`. Impressions
    of one user are not independent, so a binomial variance over impressions is too small;
    the delta method over users (Deng, Knoblich, Lu 2018, "Applying the Delta Method in
    Metric Analytics") gives

        Var(R) ~ (s_y^2 - 2 R s_xy + R^2 s_x^2) / (n mean(x)^2)

    with sample (co)variances over the n users, i.e. the variance of the per-user
    linearized values `(y - R x) / mean(x)`, over n. The difference `R_b - R_a` is tested
    with a z-test and gets a normal interval; the lift `R_b / R_a - 1` a delta-method
    normal interval, as in `welch`.

    Args:
        numerators_a: per-unit numerators of the control arm (at least 2 units).
        denominators_a: per-unit denominators of the control arm, >= 0, not all 0.
        numerators_b: per-unit numerators of the treatment arm.
        denominators_b: per-unit denominators of the treatment arm.
        alpha: one minus the intervals' coverage.

    Returns:
        The comparison of the two ratios, `method="ratio delta-method z-test"`.

    Raises:
        InvalidInput: numerators and denominators of different lengths, fewer than 2
            units, a negative denominator or all zero, NaN, or alpha outside (0, 1).
    """
    alpha = _alpha(alpha)
    ratio_a, se_a, n_a = _ratio_arm(numerators_a, denominators_a, "a")
    ratio_b, se_b, n_b = _ratio_arm(numerators_b, denominators_b, "b")
    difference = ratio_b - ratio_a
    se = math.hypot(se_a, se_b)
    lift, lift_ci = _delta_lift(ratio_a, ratio_b, se_a, se_b, alpha)
    return Comparison(
        control=ratio_a,
        treatment=ratio_b,
        difference=difference,
        diff_ci=_normal_ci(difference, se, alpha),
        lift=lift,
        lift_ci=lift_ci,
        p_value=_normal_p(difference, se),
        n_control=n_a,
        n_treatment=n_b,
        method="ratio delta-method z-test",
        alpha=alpha,
    )


_STATISTICS: dict[str, Callable[..., FloatArray]] = {"mean": np.mean, "median": np.median}


def bootstrap(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    statistic: Literal["mean", "median"] = "mean",
    n_resamples: int = 2000,
    alpha: float = 0.05,
    rng: np.random.Generator | int,
) -> Comparison:
    """Compare a statistic of two arms with percentile-bootstrap intervals.

    Each resample draws `n_a` units of A and `n_b` units of B with replacement, each arm on
    its own (`scipy.stats.bootstrap`, `method="percentile"`, one set of resamples for both
    the difference and the lift). The p-value is the percentile interval inverted: twice
    the smaller share of resampled differences on either side of 0 (`<= 0`, `>= 0`),
    capped at 1 and floored at `1 / n_resamples`, the finest the resamples resolve. It is
    below alpha about when the difference's interval excludes 0.

    Args:
        a: per-unit values of the control arm (at least 2).
        b: per-unit values of the treatment arm (at least 2).
        statistic: `"mean"` or `"median"` of each arm.
        n_resamples: bootstrap resamples (at least 1).
        alpha: one minus the intervals' coverage.
        rng: the generator of the resamples, or a seed for one.

    Returns:
        The comparison, `method="percentile bootstrap (<statistic>)"`; the lift and its
        interval are NaN when the control statistic is 0.

    Raises:
        InvalidInput: an arm with fewer than 2 values, NaN, an unknown statistic, fewer
            than 1 resample, or alpha outside (0, 1).
    """
    alpha = _alpha(alpha)
    x, y = _units(a, "a"), _units(b, "b")
    if statistic not in _STATISTICS:
        raise InvalidInput(
            f"statistic must be one of {sorted(_STATISTICS)}, got {statistic!r}", field="statistic"
        )
    if n_resamples < 1:
        raise InvalidInput(
            f"n_resamples must be at least 1, got {n_resamples}", field="n_resamples"
        )
    of = _STATISTICS[statistic]

    def difference_and_lift(xs: FloatArray, ys: FloatArray, axis: int = -1) -> FloatArray:
        control, treatment = of(xs, axis=axis), of(ys, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack([treatment - control, treatment / control - 1.0])

    result = stats.bootstrap(
        (x, y),
        difference_and_lift,
        n_resamples=n_resamples,
        batch=min(n_resamples, max(1, _CHUNK_CELLS // max(x.shape[0], y.shape[0]))),
        vectorized=True,
        paired=False,
        axis=-1,
        confidence_level=1.0 - alpha,
        method="percentile",
        rng=np.random.default_rng(rng),
    )
    low, high = result.confidence_interval
    differences = result.bootstrap_distribution[0]
    tail = min(np.count_nonzero(differences <= 0.0), np.count_nonzero(differences >= 0.0))
    p_value = min(1.0, max(2.0 * float(tail), 1.0) / n_resamples)
    control, treatment = float(of(x)), float(of(y))
    lift = treatment / control - 1.0 if control != 0.0 else math.nan
    return Comparison(
        control=control,
        treatment=treatment,
        difference=treatment - control,
        diff_ci=(float(low[0]), float(high[0])),
        lift=lift,
        lift_ci=(float(low[1]), float(high[1])) if control != 0.0 else _NAN_PAIR,
        p_value=p_value,
        n_control=x.shape[0],
        n_treatment=y.shape[0],
        method=f"percentile bootstrap ({statistic})",
        alpha=alpha,
    )


def cuped(
    y_a: npt.ArrayLike,
    x_a: npt.ArrayLike,
    y_b: npt.ArrayLike,
    x_b: npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> CupedComparison:
    """Compare two means after CUPED variance reduction (Deng, Xu, Kohavi, Walker 2013).

    With Y the metric and X a pre-experiment covariate (the same metric before the
    experiment, usually), pooled over both arms: `theta = cov(Y, X) / var(X)` (0 when X is
    constant) and `Y' = Y - theta (X - mean(X))`. Welch's test on Y' gives the p-value and
    the difference's interval; theta is treated as known, as in the paper. The lift is
    `D' / mean(Y_a)`, the adjusted difference over the unadjusted control mean, with a
    delta-method normal interval that includes the covariance of D' and m = mean(Y_a):
    `Var ~ Var(D') / m^2 + D'^2 Var(m) / m^4 + 2 D' cov(Y'_a, Y_a) / (n_a m^3)`.

    Args:
        y_a: the metric per unit of the control arm (at least 2 units).
        x_a: the covariate per unit of the control arm, same length.
        y_b: the metric per unit of the treatment arm.
        x_b: the covariate per unit of the treatment arm.
        alpha: one minus the intervals' coverage.

    Returns:
        The adjusted comparison (`method="cuped welch t-test"`), theta and the variance
        reduction.

    Raises:
        InvalidInput: a covariate of another length than its metric, fewer than 2 units,
            NaN, or alpha outside (0, 1).
    """
    alpha = _alpha(alpha)
    ya, yb = _units(y_a, "y_a"), _units(y_b, "y_b")
    xa = _paired(x_a, "x_a", ya.shape[0], "y_a")
    xb = _paired(x_b, "x_b", yb.shape[0], "y_b")
    x_all, y_all = np.concatenate([xa, xb]), np.concatenate([ya, yb])
    x_centered = x_all - x_all.mean()
    spread = float(x_centered @ x_centered)
    theta = float(x_centered @ (y_all - y_all.mean())) / spread if spread > 0.0 else 0.0
    adjusted_a = ya - theta * (xa - x_all.mean())
    adjusted_b = yb - theta * (xb - x_all.mean())
    difference, diff_ci, p_value, se_a, se_b = _welch_core(adjusted_a, adjusted_b, alpha)
    se_difference = math.hypot(se_a, se_b)
    raw_se = math.hypot(_standard_error(ya), _standard_error(yb))
    reduction = 1.0 - (se_difference / raw_se) ** 2 if raw_se > 0.0 else math.nan
    control = float(ya.mean())
    lift, lift_ci = math.nan, _NAN_PAIR
    if control != 0.0 and math.isfinite(difference / control):
        lift = difference / control
        # Var(lift) m^2 = Var(D') + lift^2 Var(m) - 2 lift Cov(D', m), where Cov(D', m) =
        # -cov(Y'_a, Y_a) / n_a: the adjusted and raw control means move together.
        cov = float(np.cov(adjusted_a, ya)[0, 1]) / ya.shape[0]
        var = se_difference**2 + lift**2 * _standard_error(ya) ** 2 + 2.0 * lift * cov
        lift_ci = _normal_ci(lift, math.sqrt(max(var, 0.0)) / abs(control), alpha)
    comparison = Comparison(
        control=float(adjusted_a.mean()),
        treatment=float(adjusted_b.mean()),
        difference=difference,
        diff_ci=diff_ci,
        lift=lift,
        lift_ci=lift_ci,
        p_value=p_value,
        n_control=ya.shape[0],
        n_treatment=yb.shape[0],
        method="cuped welch t-test",
        alpha=alpha,
    )
    return CupedComparison(comparison, theta, reduction)
