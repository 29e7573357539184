"""Confidence intervals of off-policy estimates: normal, delta-method and percentile bootstrap."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from penchant.errors import InvalidInput
from penchant.experiments.ope_checks import FloatArray, IntArray

#: Resampled indices drawn at once (32 MiB of int64), whatever the number of rounds.
_CHUNK_CELLS = 1 << 22


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value with its confidence interval.

    Attributes:
        value: the point estimate.
        ci: `(low, high)`, the two-sided `1 - alpha` interval.
        se: the standard error (the bootstrap replicates' spread when bootstrapped); NaN
            when it cannot be estimated (a single round).
    """

    value: float
    ci: tuple[float, float]
    se: float

    def as_dict(self) -> dict[str, float | list[float]]:
        """`{"value", "ci": [low, high], "se"}`, for JSON."""
        return {"value": self.value, "ci": [self.ci[0], self.ci[1]], "se": self.se}


def _generator(rng: np.random.Generator | None) -> np.random.Generator:
    if rng is None:
        raise InvalidInput("a bootstrap needs rng, a numpy Generator", field="rng")
    return rng


def _replicates(
    n: int, n_bootstrap: int, rng: np.random.Generator, statistic: Callable[[IntArray], FloatArray]
) -> FloatArray:
    """`statistic` over `n_bootstrap` resamples of the rounds, drawn in bounded chunks."""
    per_chunk = max(1, _CHUNK_CELLS // n)
    out = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, per_chunk):
        stop = min(n_bootstrap, start + per_chunk)
        out[start:stop] = statistic(rng.integers(0, n, size=(stop - start, n)))
    return out


def _from_replicates(value: float, replicates: FloatArray, alpha: float) -> Estimate:
    kept = replicates[np.isfinite(replicates)]
    if kept.size == 0:
        return Estimate(value, (math.nan, math.nan), math.nan)
    low, high = np.quantile(kept, [alpha / 2.0, 1.0 - alpha / 2.0])
    se = float(np.std(kept, ddof=1)) if kept.size > 1 else math.nan
    return Estimate(value, (float(low), float(high)), se)


def _normal(value: float, se: float, alpha: float) -> Estimate:
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    return Estimate(value, (value - z * se, value + z * se), se)


def mean_estimate(
    terms: FloatArray, alpha: float, n_bootstrap: int, rng: np.random.Generator | None
) -> Estimate:
    """The mean of per-round terms, with a normal or a percentile-bootstrap interval.

    Args:
        terms: shape (n,) one term per round (IPS, DM and DR are such means).
        alpha: one minus the interval's coverage.
        n_bootstrap: resamples of a percentile bootstrap; 0 for `mean ± z · sem`.
        rng: the generator of the resamples, needed when `n_bootstrap > 0`.

    Returns:
        The mean, its interval and its standard error (NaN with one round).

    Raises:
        InvalidInput: a bootstrap without an rng.
    """
    n = terms.shape[0]
    value = float(terms.mean())
    if n_bootstrap > 0:
        reps = _replicates(n, n_bootstrap, _generator(rng), lambda idx: terms[idx].mean(axis=1))
        return _from_replicates(value, reps, alpha)
    se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return _normal(value, se, alpha)


def ratio_estimate(
    numerator: FloatArray,
    denominator: FloatArray,
    alpha: float,
    n_bootstrap: int,
    rng: np.random.Generator | None,
) -> Estimate:
    """sum(numerator) / sum(denominator), with a delta-method or bootstrap interval.

    Args:
        numerator: shape (n,) per-round numerator terms (SNIPS: `w r`).
        denominator: shape (n,) per-round non-negative denominator terms (SNIPS: `w`).
        alpha: one minus the interval's coverage.
        n_bootstrap: resamples of a percentile bootstrap (each recomputes the ratio); 0 for
            the delta method.
        rng: the generator of the resamples, needed when `n_bootstrap > 0`.

    Returns:
        The ratio, its interval and its standard error; all NaN when the denominator sums
        to 0.

    Raises:
        InvalidInput: a bootstrap without an rng.
    """
    n = numerator.shape[0]
    total = float(denominator.sum())
    if total <= 0.0:  # the evaluated policy never takes a logged action: nothing to weigh
        return Estimate(math.nan, (math.nan, math.nan), math.nan)
    value = float(numerator.sum()) / total
    if n_bootstrap > 0:

        def ratio(idx: IntArray) -> FloatArray:
            sums = denominator[idx].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(sums > 0.0, numerator[idx].sum(axis=1) / sums, np.nan)

        return _from_replicates(value, _replicates(n, n_bootstrap, _generator(rng), ratio), alpha)
    # Linearization of the ratio: its influence terms have mean zero by construction.
    influence = (numerator - value * denominator) / (total / n)
    se = math.sqrt(float(influence @ influence) / (n * (n - 1))) if n > 1 else math.nan
    return _normal(value, se, alpha)
