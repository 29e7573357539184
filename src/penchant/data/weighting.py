"""How events become interaction strengths: type weights, rating and dwell rules, time decay."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from penchant.errors import InvalidInput

#: Default strength of each event type; types not listed (impression, dislike, skip,
#: dismiss, custom types) are not positive feedback and are left out of training data.
DEFAULT_TYPE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "purchase": 5.0,
        "conversion": 5.0,
        "add_to_cart": 3.0,
        "like": 2.0,
        "share": 2.0,
        "rating": 1.0,
        "click": 1.0,
        "dwell": 1.0,
        "view": 0.5,
    }
)

Aggregate = Literal["max", "sum"]


@dataclass(frozen=True)
class Weighting:
    """Rules that turn events into one weight per (user, item) pair.

    Attributes:
        type_weights: weight of each event type; a type with no weight (or weight 0) is
            dropped, so negative and exposure events never count as preference.
        rating_threshold: `rating` events whose value is below this are dropped (e.g. 4 on a
            1-5 scale keeps only liked items); None keeps every rating.
        rating_as_weight: multiply a rating's type weight by its value.
        min_dwell_seconds: `dwell` events (value = seconds) shorter than this are dropped.
        dwell_saturation_seconds: when set, a dwell's weight is scaled by
            min(1, seconds / this), so a glance counts less than a full read.
        half_life_days: when set, each event's weight is halved for every this many days
            it lies before `now` (the newest event unless given).
        aggregate: how the weights of several events of one pair combine: `max` (the
            strongest signal) or `sum` (repeated engagement counts more).
        min_user_interactions: users with fewer distinct items are dropped.
        min_item_interactions: items with fewer distinct users are dropped. Both minimums
            are applied together until neither removes anything (a k-core).
    """

    type_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TYPE_WEIGHTS))
    rating_threshold: float | None = None
    rating_as_weight: bool = False
    min_dwell_seconds: float = 0.0
    dwell_saturation_seconds: float | None = None
    half_life_days: float | None = None
    aggregate: Aggregate = "max"
    min_user_interactions: int = 1
    min_item_interactions: int = 1

    def __post_init__(self) -> None:
        for name, weight in self.type_weights.items():
            if not math.isfinite(weight) or weight < 0:
                raise InvalidInput(f"type_weights.{name}: must be a finite number >= 0")
        if not any(w > 0 for w in self.type_weights.values()):
            raise InvalidInput("type_weights: at least one event type needs a weight above 0")
        if self.rating_threshold is not None and not math.isfinite(self.rating_threshold):
            raise InvalidInput(
                "rating_threshold: must be a finite number", field="rating_threshold"
            )
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise InvalidInput("half_life_days: must be above 0", field="half_life_days")
        saturation = self.dwell_saturation_seconds
        if saturation is not None and not (math.isfinite(saturation) and saturation > 0):
            raise InvalidInput(
                "dwell_saturation_seconds: must be a finite number above 0",
                field="dwell_saturation_seconds",
            )
        if not (math.isfinite(self.min_dwell_seconds) and self.min_dwell_seconds >= 0):
            raise InvalidInput(
                "min_dwell_seconds: must be a finite number >= 0", field="min_dwell_seconds"
            )
        if self.aggregate not in ("max", "sum"):
            raise InvalidInput("aggregate: must be 'max' or 'sum'", field="aggregate")
        for name in ("min_user_interactions", "min_item_interactions"):
            if not getattr(self, name) >= 1:
                raise InvalidInput(f"{name}: must be >= 1", field=name)

    @property
    def positive_types(self) -> list[str]:
        """The event types that count, in a stable order."""
        return sorted(t for t, w in self.type_weights.items() if w > 0)
