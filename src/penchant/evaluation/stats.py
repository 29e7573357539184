"""Statistics over per-user metric values: bootstrap intervals, paired tests, Holm correction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from penchant.errors import InvalidInput
from penchant.experiments.validity import holm as holm  # re-exported: one Holm in penchant

# Resampled indices drawn at once (32 MiB of int64), whatever the number of users.
_CHUNK_CELLS = 1 << 22


@dataclass(frozen=True)
class PairedComparison:
    """Two systems compared on the same users: B minus A.

    Attributes:
        metric: the metric compared, e.g. `"ndcg@10"`.
        mean_a: mean of A over users.
        mean_b: mean of B over users.
        difference: `mean_b - mean_a`.
        ci_low: lower end of the percentile-bootstrap interval of the mean paired difference.
        ci_high: upper end of that interval.
        t_pvalue: two-sided paired t-test p-value (1.0 when every difference is zero, NaN
            with fewer than two users).
        wilcoxon_pvalue: two-sided Wilcoxon signed-rank p-value, zero differences dropped
            (1.0 when every difference is zero).
        n_users: number of paired users.
    """

    metric: str
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    t_pvalue: float
    wilcoxon_pvalue: float
    n_users: int


def bootstrap_ci(
    values: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean over users.

    Each resample draws n users with replacement; the interval is the
    `(1 - confidence) / 2` and `(1 + confidence) / 2` quantiles of the resampled means.
    Resamples are drawn in chunks, so memory stays bounded for any number of users.

    Args:
        values: one finite value per user.
        confidence: coverage of the interval, strictly between 0 and 1.
        n_resamples: number of bootstrap resamples (at least 1).
        rng: a generator, or a seed for one (`None` draws fresh entropy).

    Returns:
        `(low, high)`.

    Raises:
        InvalidInput: no values, a non-finite value, or a bad confidence or resample count.
    """
    sample = _sample(values, "values")
    if not 0.0 < confidence < 1.0:
        raise InvalidInput(f"confidence must lie in (0, 1), got {confidence}", field="confidence")
    if n_resamples < 1:
        raise InvalidInput("n_resamples must be at least 1", field="n_resamples")
    generator = np.random.default_rng(rng)
    n = sample.size
    per_chunk = max(1, _CHUNK_CELLS // n)
    means = np.full(n_resamples, np.nan)  # a resample left undrawn would show as NaN
    for start in range(0, n_resamples, per_chunk):
        stop = min(start + per_chunk, n_resamples)
        picks = generator.integers(0, n, size=(stop - start, n))
        means[start:stop] = sample[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_comparison(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    metric: str,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    rng: np.random.Generator | int | None = 0,
) -> PairedComparison:
    """Compare system B with system A on per-user values of one metric.

    Args:
        a: per-user values of A.
        b: per-user values of B, for the same users in the same order.
        metric: name of the metric, carried into the result.
        confidence: coverage of the bootstrap interval of the mean difference.
        n_resamples: number of bootstrap resamples.
        rng: a generator, or a seed for one.

    Returns:
        Means, the mean difference `B - A` with its bootstrap interval, and the paired t-test
        and Wilcoxon signed-rank p-values.

    Raises:
        InvalidInput: empty or non-finite values, or `a` and `b` of different lengths.
    """
    first, second = _sample(a, "a"), _sample(b, "b")
    if first.size != second.size:
        raise InvalidInput(
            f"a has {first.size} values but b has {second.size}; pair the same users", field="b"
        )
    differences = second - first
    low, high = bootstrap_ci(differences, confidence=confidence, n_resamples=n_resamples, rng=rng)
    if not differences.any():
        # Both tests divide zero by zero here; no difference at all is no evidence of one.
        t_pvalue = wilcoxon_pvalue = 1.0
    else:
        t_pvalue = float(sps.ttest_rel(second, first).pvalue) if first.size > 1 else np.nan
        wilcoxon_pvalue = float(sps.wilcoxon(differences).pvalue)
    return PairedComparison(
        metric=metric,
        mean_a=float(first.mean()),
        mean_b=float(second.mean()),
        difference=float(second.mean() - first.mean()),
        ci_low=low,
        ci_high=high,
        t_pvalue=t_pvalue,
        wilcoxon_pvalue=wilcoxon_pvalue,
        n_users=int(first.size),
    )


def _sample(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    try:
        sample = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"{name} must hold numbers: {error}", field=name) from error
    if sample.ndim != 1 or sample.size == 0:
        raise InvalidInput(f"{name} must be a non-empty 1-D array of per-user values", field=name)
    if not np.isfinite(sample).all():
        raise InvalidInput(f"{name} holds a NaN or infinite value", field=name)
    return sample
