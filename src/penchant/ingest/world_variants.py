"""A content slot in the simulated world: variants whose true appeal to each person is known.

Each variant speaks to one topic (a category of the world) in one style, short or long. A
person's chance of clicking it is

    sigmoid(BASE + TOPIC_WEIGHT * (their true factors · the topic's centroid) + style effect
            on their device),

so which variant is best depends on who is asking (their taste) and where (short copy does
better on phones, long copy on desktops). The person's segment, their strongest topic, and
their device are what a contextual policy can observe; the taste behind them it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from penchant.ingest.world import World
from penchant.ingest.world_draw import DEVICE_P, DEVICES, DIURNAL, Floats, Ints, sigmoid

BASE = -2.6
TOPIC_WEIGHT = 0.45
STYLES = ("short", "long")
#: Logit effect of each style (rows) on each device (columns: mobile, desktop, tablet).
STYLE_ON_DEVICE = np.array([[0.5, -0.3, 0.1], [-0.3, 0.4, 0.0]])


@dataclass(frozen=True)
class Requests:
    """A stream of requests: who asks, on which device, at what hour (UTC)."""

    users: Ints
    devices: Ints
    hours: Ints
    segments: Ints  # each person's strongest topic, an index into `SlotWorld.topics`


class SlotWorld:
    """A slot with `n_topics * 2` variants, in a world whose tastes are known."""

    def __init__(self, world: World, n_topics: int = 4) -> None:
        arrays = world.arrays
        shares = arrays.user_taste.sum(axis=0)
        self.world = world
        #: the variants' topics: the world's most followed categories
        self.topics: Ints = np.argsort(-shares)[:n_topics].astype(np.int64)
        self.variant_topic: Ints = np.repeat(self.topics, len(STYLES))
        self.variant_style: Ints = np.tile(np.arange(len(STYLES)), n_topics)
        self.variant_ids = [
            f"{arrays.categories[t]}-{STYLES[s]}"
            for t, s in zip(self.variant_topic, self.variant_style, strict=True)
        ]
        #: every category's name: the segments a slot declares
        self.segment_names = [str(c) for c in arrays.categories]
        self._affinity = arrays.user_factors @ arrays.centroids[self.variant_topic].T
        self._segment = np.argmax(arrays.user_taste, axis=1)

    def requests(self, n: int, rng: np.random.Generator) -> Requests:
        """`n` requests from people drawn by their activity, at diurnal hours."""
        activity = self.world.arrays.activity
        users = rng.choice(len(activity), size=n, p=activity / activity.sum())
        return Requests(
            users=users.astype(np.int64),
            devices=rng.choice(len(DEVICES), size=n, p=DEVICE_P).astype(np.int64),
            hours=rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum()).astype(np.int64),
            segments=self._segment[users].astype(np.int64),
        )

    def click_probability(self, users: Ints, devices: Ints) -> Floats:
        """The true chance of a click on each variant, (len(users), n_variants)."""
        style = STYLE_ON_DEVICE[self.variant_style][:, devices].T
        return np.asarray(sigmoid(BASE + TOPIC_WEIGHT * self._affinity[users] + style))
