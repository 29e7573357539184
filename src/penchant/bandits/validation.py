"""Checks shared by the policies: hyperparameters, contexts, rewards and statistics."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from penchant.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]

#: Monte Carlo draws per decision above this would hold K x n_draws floats for nothing.
MAX_DRAWS = 100_000


def real_param(
    name: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
) -> float:
    """A real hyperparameter in [low, high] (or (low, high] when `low_open`), as a float.

    Raises:
        InvalidInput: the value is not a finite real number in range; the field is
            `policy.<name>`.
    """
    field = f"policy.{name}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{field}: must be a number, got {value!r}", field=field)
    number = float(value)
    below = number <= low if low_open else number < low
    if not math.isfinite(number) or below or number > high:
        left = "(" if low_open else "["
        raise InvalidInput(
            f"{field}: must be in {left}{low:g}, {high:g}], got {value!r}", field=field
        )
    return number


def count_param(name: str, value: object, *, low: int = 1, high: int = MAX_DRAWS) -> int:
    """An integer hyperparameter in [low, high].

    Raises:
        InvalidInput: the value is not an integer in range; the field is `policy.<name>`.
    """
    field = f"policy.{name}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInput(f"{field}: must be an integer, got {value!r}", field=field)
    if not low <= int(value) <= high:
        raise InvalidInput(f"{field}: must be in [{low}, {high}], got {value!r}", field=field)
    return int(value)


def as_context(x: object, field: str = "x") -> FloatArray:
    """A context as a 1-D finite float64 vector; None is the empty context.

    Raises:
        InvalidInput: x is not a 1-D vector of finite numbers.
    """
    if x is None:
        return np.zeros(0)
    try:
        out = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: must be a vector of numbers", field=field) from exc
    if out.ndim != 1:
        raise InvalidInput(f"{field}: must be 1-D, got shape {out.shape}", field=field)
    if not np.isfinite(out).all():
        raise InvalidInput(f"{field}: must be finite (no NaN or infinity)", field=field)
    return out


def as_contexts(contexts: object, n: int, field: str = "contexts") -> FloatArray:
    """A batch of contexts as an (n, d) finite float64 matrix; None is n empty contexts.

    Raises:
        InvalidInput: not a 2-D matrix of finite numbers with n rows.
    """
    if contexts is None:
        return np.zeros((n, 0))
    try:
        out = np.asarray(contexts, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: must be a matrix of numbers", field=field) from exc
    if out.ndim != 2 or out.shape[0] != n:
        raise InvalidInput(f"{field}: must have shape ({n}, d), got {out.shape}", field=field)
    if not np.isfinite(out).all():
        raise InvalidInput(f"{field}: must be finite (no NaN or infinity)", field=field)
    return out


def as_reward(reward: object, field: str = "reward") -> float:
    """A reward as a finite float.

    Raises:
        InvalidInput: not a finite real number.
    """
    if not isinstance(reward, numbers.Real) or not math.isfinite(float(reward)):
        raise InvalidInput(f"{field}: must be a finite number, got {reward!r}", field=field)
    return float(reward)


def as_rewards(rewards: object, n: int, field: str = "rewards") -> FloatArray:
    """A batch of rewards as an (n,) finite float64 vector.

    Raises:
        InvalidInput: not n finite numbers.
    """
    try:
        out = np.asarray(rewards, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: must be a vector of numbers", field=field) from exc
    if out.shape != (n,):
        raise InvalidInput(f"{field}: must have shape ({n},), got {out.shape}", field=field)
    if not np.isfinite(out).all():
        raise InvalidInput(f"{field}: must be finite (no NaN or infinity)", field=field)
    return out


def as_stats(stats: object, width: int, field: str = "stats", note: str = "") -> FloatArray:
    """Per-arm statistics as a (K, width) finite float64 matrix with K >= 1.

    `note` ends the message about a wrong shape (e.g. the context length the width is for).

    Raises:
        InvalidInput: wrong shape, no arms, or non-finite values.
    """
    try:
        out = np.asarray(stats, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: must be a matrix of numbers", field=field) from exc
    if out.ndim != 2 or out.shape[1] != width or out.shape[0] == 0:
        raise InvalidInput(
            f"{field}: must have shape (K, {width}) with K >= 1{note}, got {out.shape}",
            field=field,
        )
    if not np.isfinite(out).all():
        raise InvalidInput(f"{field}: must be finite (no NaN or infinity)", field=field)
    return out


def as_rng(rng: object) -> np.random.Generator:
    """The generator itself.

    Raises:
        InvalidInput: rng is not a `numpy.random.Generator`.
    """
    if not isinstance(rng, np.random.Generator):
        raise InvalidInput(
            f"rng: must be a numpy.random.Generator, got {type(rng).__name__}", field="rng"
        )
    return rng


def as_arms(
    arms: Sequence[str] | npt.NDArray[np.str_], field: str, *, allow_empty: bool
) -> npt.NDArray[np.str_]:
    """Arm names as a string array.

    Raises:
        InvalidInput: not a sequence of strings, or empty when `allow_empty` is False.
    """
    message = f"{field}: must be a sequence of strings"
    if isinstance(arms, str | bytes):
        raise InvalidInput(message, field=field)
    try:
        names = list(arms)
    except TypeError as exc:
        raise InvalidInput(message, field=field) from exc
    if not all(isinstance(arm, str) for arm in names):
        raise InvalidInput(message, field=field)
    if not allow_empty and not names:
        raise InvalidInput(f"{field}: must name at least one arm", field=field)
    return np.asarray(names, dtype=np.str_)
