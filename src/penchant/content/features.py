"""The context a slot's policy sees, as a short vector of numbers.

The vector starts with a constant 1 (the intercept of linear policies), then each feature
group the slot lists, in the order of `penchant.schema.content.FEATURE_GROUPS`:

- device: one-hot of mobile, desktop, tablet, other (all zero when unknown);
- time: the hour of day on a circle (sine, cosine) and whether it is a weekend (UTC);
- segment: one-hot of the slot's declared segments plus "other" (all zero when unknown);
- locale: the language, one-hot over 8 hashed buckets;
- surface: the surface, one-hot over 8 hashed buckets.

A slot's `signature` changes whenever its vector would mean something else, so statistics
learned under one layout are never read under another.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from datetime import datetime
from typing import Any

import numpy as np

from penchant.schema.content import FEATURE_GROUPS, Slot

DEVICES = ("mobile", "desktop", "tablet")
BUCKETS = 8

Vector = np.ndarray[Any, np.dtype[np.float64]]


def width(slot: Slot) -> int:
    """How many numbers the slot's context vector holds."""
    sizes = {
        "device": len(DEVICES) + 1,
        "time": 3,
        "segment": len(slot.segments) + 1,
        "locale": BUCKETS,
        "surface": BUCKETS,
    }
    return 1 + sum(sizes[g] for g in slot.features)


def layout_signature(slot: Slot) -> str:
    """A short id of the slot's context layout: vectors with the same one mean the same."""
    layout = (slot.id, [g for g in FEATURE_GROUPS if g in slot.features], slot.segments)
    return hashlib.blake2b(repr(layout).encode(), digest_size=6).hexdigest()


def signature(slot: Slot, scope: str = "") -> str:
    """A short id of the slot, its policy and its context layout (part of its state keys):
    statistics learned under one never mix with those of another. A `scope` (an experiment's
    arm, `experiment/arm`) gives statistics of their own to the decisions made in it."""
    policy = sorted(slot.policy.items())
    parts = (layout_signature(slot), policy, scope) if scope else (layout_signature(slot), policy)
    return hashlib.blake2b(repr(parts).encode(), digest_size=6).hexdigest()


def featurize(
    slot: Slot,
    *,
    at: datetime,
    device: str | None = None,
    segment: str | None = None,
    locale: str | None = None,
    surface: str | None = None,
) -> Vector:
    """The context vector of one request for a slot (see the module docstring)."""
    x = np.zeros(width(slot))
    x[0] = 1.0
    at_ = 1
    for group in FEATURE_GROUPS:
        if group not in slot.features:
            continue
        if group == "device":
            if device is not None:
                x[at_ + (DEVICES.index(device) if device in DEVICES else len(DEVICES))] = 1.0
            at_ += len(DEVICES) + 1
        elif group == "time":
            angle = 2 * math.pi * (at.hour + at.minute / 60) / 24
            x[at_ : at_ + 3] = (math.sin(angle), math.cos(angle), float(at.weekday() >= 5))
            at_ += 3
        elif group == "segment":
            if segment is not None:
                known = slot.segments
                x[at_ + (known.index(segment) if segment in known else len(known))] = 1.0
            at_ += len(slot.segments) + 1
        else:
            if group == "locale":
                value = locale.split("-")[0].lower() if locale else None
            else:
                value = surface
            if value:
                x[at_ + zlib.crc32(value.encode()) % BUCKETS] = 1.0
            at_ += BUCKETS
    return x
