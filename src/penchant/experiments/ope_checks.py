"""Validation of off-policy evaluation inputs: each bad array becomes one `InvalidInput`."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from penchant.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: How far a distribution's probabilities may sum from 1 (obp checks the same with allclose).
SUM_TOLERANCE = 1e-6


def _first_bad(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask.ravel())[0])


def _array(values: npt.ArrayLike, field: str) -> npt.NDArray[np.generic]:
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: not an array of numbers ({exc})", field=field) from exc


def floats(values: npt.ArrayLike, field: str, *, ndim: int) -> FloatArray:
    """A finite float array of a given number of dimensions.

    Raises:
        InvalidInput: wrong dimensions, a value that is not a number, NaN or infinite.
    """
    array = _array(values, field)
    if array.ndim != ndim:
        raise InvalidInput(
            f"{field} must have {ndim} dimension(s), got shape {array.shape}", field=field
        )
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"{field} must hold numbers, got dtype {array.dtype}", field=field)
    out = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(out)
    if bad.any():
        at = np.unravel_index(_first_bad(bad), out.shape)
        raise InvalidInput(f"{field} holds {out[at]} at index {tuple(map(int, at))}", field=field)
    return out


def indices(values: npt.ArrayLike, field: str, *, n: int, upper: int, what: str) -> IntArray:
    """Whole numbers in `[0, upper)`, one per round.

    Args:
        values: the indices (integers, or floats holding whole numbers).
        field: the name used in messages.
        n: the number of rounds the array must have.
        upper: one past the largest valid index.
        what: what `upper` counts, for the message (e.g. "n_actions = 80, from action_dist").

    Raises:
        InvalidInput: wrong length, a value that is not a whole number or out of range.
    """
    array = _array(values, field)
    if array.ndim != 1 or array.shape[0] != n:
        raise InvalidInput(f"{field} must have shape ({n},), got {array.shape}", field=field)
    if array.dtype.kind in "iu":
        out = array.astype(np.int64, copy=False)
    elif array.dtype.kind == "f":
        whole = np.isfinite(array) & (np.floor(array) == array)
        if not whole.all():
            at = _first_bad(~whole)
            raise InvalidInput(
                f"{field} must hold whole numbers, got {array[at]} at round {at}", field=field
            )
        out = array.astype(np.int64)
    else:
        raise InvalidInput(f"{field} must hold integers, got dtype {array.dtype}", field=field)
    outside = (out < 0) | (out >= upper)
    if outside.any():
        at = _first_bad(outside)
        raise InvalidInput(
            f"{field} must lie in [0, {upper}) ({what}), got {out[at]} at round {at}", field=field
        )
    return out


def rounds(values: npt.ArrayLike, field: str) -> FloatArray:
    """A non-empty one-dimensional finite float array (the rewards, usually).

    Raises:
        InvalidInput: not one-dimensional, empty, or not finite.
    """
    out = floats(values, field, ndim=1)
    if out.shape[0] == 0:
        raise InvalidInput(f"{field} is empty: there are no logged rounds to evaluate", field=field)
    return out


def same_length(array: FloatArray, field: str, n: int, reference: str) -> FloatArray:
    """The array itself, after checking that it has `n` rounds like `reference`.

    Raises:
        InvalidInput: a different number of rounds.
    """
    if array.shape[0] != n:
        raise InvalidInput(
            f"{field} has {array.shape[0]} rounds but {reference} has {n}", field=field
        )
    return array


def propensities(values: npt.ArrayLike, n: int, reference: str) -> FloatArray:
    """The logging policy's propensities: one per round, each in (0, 1].

    Raises:
        InvalidInput: wrong length, or a propensity outside (0, 1] or NaN.
    """
    out = same_length(floats(values, "pscore", ndim=1), "pscore", n, reference)
    bad = (out <= 0.0) | (out > 1.0)
    if bad.any():
        at = _first_bad(bad)
        raise InvalidInput(
            f"pscore must lie in (0, 1], got {out[at]} at round {at}", field="pscore"
        )
    return out


def distribution(values: npt.ArrayLike, n: int | None, reference: str) -> FloatArray:
    """The evaluated policy's probabilities, shape (n_rounds, n_actions, len_list).

    Every (round, position) must hold a distribution over actions: no negative value and a
    sum within `SUM_TOLERANCE` of 1.

    Raises:
        InvalidInput: wrong shape, a negative probability or a sum other than 1.
    """
    out = floats(values, "action_dist", ndim=3)
    if n is not None:
        same_length(out, "action_dist", n, reference)
    elif out.shape[0] == 0:
        raise InvalidInput(
            "action_dist is empty: there are no rounds to evaluate", field="action_dist"
        )
    if out.shape[1] == 0 or out.shape[2] == 0:
        raise InvalidInput(
            f"action_dist needs at least one action and one position, got shape {out.shape}",
            field="action_dist",
        )
    negative = out < 0.0
    if negative.any():
        at = tuple(map(int, np.unravel_index(_first_bad(negative), out.shape)))
        raise InvalidInput(
            f"action_dist holds a negative probability {out[at]} at index {at}", field="action_dist"
        )
    sums = out.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        i, k = (int(v) for v in np.unravel_index(_first_bad(off), sums.shape))
        raise InvalidInput(
            f"action_dist must sum to 1 over actions, got {sums[i, k]:.9g} at round {i}, "
            f"position {k}",
            field="action_dist",
        )
    return out


def reward_table(values: npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    """A reward model's predictions, shaped like the action distribution.

    Raises:
        InvalidInput: a different shape, or a value that is not finite.
    """
    out = floats(values, "estimated_rewards", ndim=3)
    if out.shape != shape:
        raise InvalidInput(
            f"estimated_rewards must have the shape of action_dist {shape}, got {out.shape}",
            field="estimated_rewards",
        )
    return out


def options(alpha: float, n_bootstrap: int, lambda_: float | None = None) -> None:
    """Check the options every estimator shares.

    Raises:
        InvalidInput: alpha outside (0, 1), a negative resample count or a weight cap <= 0.
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidInput(f"alpha must lie in (0, 1), got {alpha}", field="alpha")
    if n_bootstrap < 0:
        raise InvalidInput(f"n_bootstrap must be 0 or more, got {n_bootstrap}", field="n_bootstrap")
    if lambda_ is not None and (math.isnan(lambda_) or lambda_ <= 0.0):
        raise InvalidInput(f"lambda_ must be a positive weight cap, got {lambda_}", field="lambda_")
