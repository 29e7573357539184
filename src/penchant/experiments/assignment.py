"""Deterministic assignment of units (users, sessions) to variants, with ramps and holdouts.

A unit's fate is a pure function of the experiment's salt and the unit id, through a keyed
cryptographic hash (never Python's `hash()`, which is salted per process): every process,
worker and restart gives a unit the same answer without storing it.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from penchant.errors import InvalidInput

Reason = Literal["holdout", "not_ramped", "assigned"]

#: blake2b's personalization: keeps these digests apart from any other use of blake2b.
_PERSON = b"penchant.assign1"
#: The hash's float keeps the top 53 bits of its 64: a double holds them exactly, so the
#: result is always below 1 (the full 64 bits divided by 2**64 can round up to 1.0).
_FLOAT_BITS = 53


def _encode(parts: tuple[str, ...]) -> bytes:
    """An injective encoding of a tuple of strings: the count, then each length and its bytes."""
    chunks = [len(parts).to_bytes(8, "big")]
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        chunks.append(len(data).to_bytes(8, "big"))
        chunks.append(data)
    return b"".join(chunks)


def _uniform(*parts: str) -> float:
    """A uniform number in [0, 1) from 64 bits of the blake2b digest of `parts`."""
    digest = hashlib.blake2b(_encode(parts), digest_size=8, person=_PERSON).digest()
    return (int.from_bytes(digest, "big") >> (64 - _FLOAT_BITS)) / float(1 << _FLOAT_BITS)


def unit_hash(salt: str, unit: str) -> float:
    """A unit's stable position in [0, 1) under one salt.

    The salt and the unit are length-prefixed before hashing, so `("ab", "c")` and
    `("a", "bc")` differ. The value is the same in every process, on every machine.

    Args:
        salt: what makes the hash particular to one experiment or holdout.
        unit: the id of the unit (a user id, a session id).

    Returns:
        A number in [0, 1), uniform over units and independent across salts.

    Raises:
        InvalidInput: a salt or a unit that is not a string.
    """
    _check_str(salt, "salt")
    _check_str(unit, "unit")
    return _uniform(salt, unit)


def _check_str(value: object, field: str, *, empty: bool = True) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, not {type(value).__name__}", field=field)
    if not empty and not value:
        raise InvalidInput(f"{field} must not be empty", field=field)


def _real(value: object) -> float | None:
    """`value` as a float when it is a real number (bools excluded), else None."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _check_share(value: object, field: str) -> float:
    share = _real(value)
    if share is None or not 0.0 <= share <= 1.0:  # NaN fails the comparison
        raise InvalidInput(f"{field} must be a number in [0, 1], got {value!r}", field=field)
    return share


@dataclass(frozen=True)
class Holdout:
    """A long-term holdout shared by many experiments (for instance one per tenant).

    Units with `unit_hash(salt, unit) < share` see the default experience in every
    experiment that uses this holdout, and are left out of their analyses: they measure the
    combined effect of all those experiments over time.

    Attributes:
        salt: the holdout's own salt (not an experiment's).
        share: the fraction of units held out, in [0, 1].
    """

    salt: str
    share: float

    def __post_init__(self) -> None:
        _check_str(self.salt, "salt", empty=False)
        object.__setattr__(self, "share", _check_share(self.share, "share"))

    def contains(self, unit: str) -> bool:
        """Whether `unit` is held out."""
        return unit_hash(self.salt, unit) < self.share


@dataclass(frozen=True)
class Allocation:
    """How an experiment splits its units between variants.

    Changing `ramp` moves no unit between variants. Changing `weights` moves the units whose
    hash lies between the old and the new bounds, and changing `variants` or `salt` reshuffles
    them all: either mixes exposures, so a new split of running traffic should be a new
    experiment (a new salt), analysed from its start.

    Attributes:
        variants: the variant names, unique and non-empty.
        weights: one positive weight per variant, of any scale; stored normalized to sum to 1.
        ramp: the share of eligible units that enter the experiment, in [0, 1]; raising it
            only ever adds units.
        salt: the experiment's own salt (its id is a good one).
    """

    variants: tuple[str, ...]
    weights: tuple[float, ...]
    ramp: float
    salt: str

    def __post_init__(self) -> None:
        variants = tuple(self.variants)
        if not variants:
            raise InvalidInput("an experiment needs at least one variant", field="variants")
        if not all(isinstance(name, str) and name for name in variants):
            raise InvalidInput(
                f"variant names must be non-empty strings, got {variants!r}", field="variants"
            )
        if len(set(variants)) != len(variants):
            raise InvalidInput(f"variant names repeat: {variants!r}", field="variants")
        weights = tuple(self.weights)
        if len(weights) != len(variants):
            raise InvalidInput(
                f"{len(weights)} weights for {len(variants)} variants", field="weights"
            )
        reals = [_real(w) for w in weights]
        for w, real in zip(weights, reals, strict=True):
            if real is None or not math.isfinite(real) or real <= 0.0:
                raise InvalidInput(
                    f"weights must be positive finite numbers, got {w!r}", field="weights"
                )
        total = math.fsum(r for r in reals if r is not None)
        _check_str(self.salt, "salt", empty=False)
        object.__setattr__(self, "variants", variants)
        object.__setattr__(self, "weights", tuple(r / total for r in reals if r is not None))
        object.__setattr__(self, "ramp", _check_share(self.ramp, "ramp"))

    def _variant_at(self, u: float) -> str:
        """The variant whose slice of the cumulative weights holds `u` in [0, 1)."""
        bounds = list(accumulate(self.weights))
        # Rounding can leave the last bound a hair under 1: a u above it is the last variant's.
        return self.variants[min(bisect_right(bounds, u), len(self.variants) - 1)]


@dataclass(frozen=True)
class Assignment:
    """Where one unit stands in one experiment.

    Attributes:
        variant: the variant the unit sees; None when it is not in the experiment (it sees the
            default experience and is left out of the analysis).
        reason: `"holdout"` (in the long-term holdout), `"not_ramped"` (outside the ramp) or
            `"assigned"`.
    """

    variant: str | None
    reason: Reason


def assign(allocation: Allocation, unit: str, *, holdout: Holdout | None = None) -> Assignment:
    """The variant of one unit: the same answer for the same unit, everywhere, every time.

    Two independent hashes of the unit under the experiment's salt decide: one whether it is
    in the ramp (`u < ramp`), the other which variant it gets (by cumulative weights). So a
    unit keeps its variant when the ramp grows, and the variants keep their weights inside
    any ramp. A holdout is checked first, with its own salt.

    Args:
        allocation: the experiment's variants, weights, ramp and salt.
        unit: the unit's id, a non-empty string (a user id or a session id).
        holdout: a long-term holdout this experiment respects, if any.

    Returns:
        The unit's variant, or None with the reason it is not in the experiment.

    Raises:
        InvalidInput: a unit that is not a non-empty string.
    """
    _check_str(unit, "unit", empty=False)
    if holdout is not None and holdout.contains(unit):
        return Assignment(None, "holdout")
    if not _uniform(allocation.salt, "ramp", unit) < allocation.ramp:
        return Assignment(None, "not_ramped")
    return Assignment(
        allocation._variant_at(_uniform(allocation.salt, "variant", unit)), "assigned"
    )
