"""Whether an experiment's comparisons can be trusted and read together: the sample ratio
mismatch check of its split, and Holm's correction across the metrics compared."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import stats

from penchant.errors import InvalidInput
from penchant.experiments import ope_checks as checks


def sample_ratio_mismatch(
    counts: Sequence[int] | npt.ArrayLike, expected_shares: Sequence[float] | npt.ArrayLike
) -> tuple[float, float]:
    """Pearson's chi-square goodness of fit of the units per arm to the planned split.

    A sample ratio mismatch (far more units in one arm than planned) means assignment or
    logging is broken, and the experiment's comparisons cannot be trusted.

    Args:
        counts: units observed per arm (whole numbers >= 0, at least 2 arms, not all 0).
        expected_shares: the planned share of each arm, > 0; normalized to sum to 1, so
            `[1, 1]` and `[0.5, 0.5]` are the same plan.

    Returns:
        `(chi2, p_value)`, with `len(counts) - 1` degrees of freedom.

    Raises:
        InvalidInput: a count that is negative or not whole, all counts 0, fewer than 2
            arms, a share <= 0 or not finite, or shares of another length.
    """
    observed = checks.floats(counts, "counts", ndim=1)
    if observed.shape[0] < 2:
        raise InvalidInput("counts needs at least 2 arms", field="counts")
    if ((observed < 0.0) | (np.floor(observed) != observed)).any():
        raise InvalidInput("counts must be whole numbers >= 0", field="counts")
    if observed.sum() <= 0.0:
        raise InvalidInput("counts are all 0: there is nothing to test", field="counts")
    shares = checks.floats(expected_shares, "expected_shares", ndim=1)
    if shares.shape[0] != observed.shape[0]:
        raise InvalidInput(
            f"expected_shares has {shares.shape[0]} arms but counts has {observed.shape[0]}",
            field="expected_shares",
        )
    if (shares <= 0.0).any():
        raise InvalidInput("expected_shares must all be > 0", field="expected_shares")
    expected = observed.sum() * shares / shares.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return chi2, float(stats.chi2.sf(chi2, observed.shape[0] - 1))


def srm_suspected(p_value: float, threshold: float = 0.001) -> bool:
    """Whether an SRM p-value is low enough to distrust the experiment.

    The threshold is strict because the check runs on every experiment, often many times;
    at 0.001 a healthy experiment is flagged once in a thousand checks.

    Args:
        p_value: from `sample_ratio_mismatch`.
        threshold: the p-value under which a mismatch is suspected, in (0, 1).

    Raises:
        InvalidInput: a p-value outside [0, 1] or a threshold outside (0, 1).
    """
    if not 0.0 <= p_value <= 1.0:
        raise InvalidInput(f"p_value must lie in [0, 1], got {p_value}", field="p_value")
    if not 0.0 < threshold < 1.0:
        raise InvalidInput(f"threshold must lie in (0, 1), got {threshold}", field="threshold")
    return p_value < threshold


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order.

    The i-th smallest of m p-values (1-based) becomes `max_{j<=i} (m - j + 1) * p_(j)`,
    capped at 1; rejecting where the adjusted value is below alpha controls the
    family-wise error rate at alpha.

    Args:
        p_values: raw p-values, each in [0, 1].

    Returns:
        The adjusted p-values, one per input, in the same order.

    Raises:
        InvalidInput: a p-value outside [0, 1] or NaN.
    """
    raw = np.asarray(p_values, dtype=np.float64)
    if raw.ndim != 1 or not np.all((raw >= 0.0) & (raw <= 1.0)):
        raise InvalidInput(
            "p-values must be a flat sequence of numbers in [0, 1]", field="p_values"
        )
    order = np.argsort(raw, kind="stable")
    scaled = raw[order] * np.arange(raw.size, 0, -1)
    adjusted = np.empty_like(raw)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return [float(p) for p in adjusted]
