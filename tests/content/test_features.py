"""The context vector a slot's policy sees."""

from __future__ import annotations

import math
import zlib
from datetime import UTC, datetime

import numpy as np

from penchant.content.features import BUCKETS, featurize, layout_signature, signature, width
from penchant.schema.content import Slot

SATURDAY_6PM = datetime(2026, 11, 28, 18, 0, tzinfo=UTC)


def test_every_group_lands_where_the_layout_says() -> None:
    slot = Slot(
        id="s",
        features=["surface", "device", "time", "segment", "locale"],  # listed in any order
        segments=["a", "b"],
    )
    x = featurize(
        slot, at=SATURDAY_6PM, device="desktop", segment="b", locale="en-GB", surface="home"
    )
    assert width(slot) == len(x) == 1 + 4 + 3 + 3 + BUCKETS + BUCKETS
    expected = [1.0]
    expected += [0, 1, 0, 0]  # mobile, desktop, tablet, other
    angle = 2 * math.pi * 18 / 24
    expected += [math.sin(angle), math.cos(angle), 1.0]  # Saturday is a weekend
    expected += [0, 1, 0]  # a, b, other
    locale = [0.0] * BUCKETS
    locale[zlib.crc32(b"en") % BUCKETS] = 1.0
    surface = [0.0] * BUCKETS
    surface[zlib.crc32(b"home") % BUCKETS] = 1.0
    np.testing.assert_allclose(x, expected + locale + surface)


def test_unknown_values_are_other_and_missing_ones_are_zero() -> None:
    slot = Slot(id="s", features=["device", "segment"], segments=["a"])
    np.testing.assert_array_equal(
        featurize(slot, at=SATURDAY_6PM, device="watch", segment="z"), [1, 0, 0, 0, 1, 0, 1]
    )
    np.testing.assert_array_equal(featurize(slot, at=SATURDAY_6PM), [1, 0, 0, 0, 0, 0, 0])


def test_the_signature_changes_with_what_the_vector_means() -> None:
    base = Slot(id="s", features=["device"], policy={"name": "linucb"})
    same_layout = base.model_copy(update={"policy": {"name": "linucb", "alpha": 2.0}})
    assert layout_signature(same_layout) == layout_signature(base)
    assert signature(same_layout) != signature(base)
    for changed in (
        base.model_copy(update={"features": ["device", "time"]}),
        base.model_copy(update={"id": "t"}),
        base.model_copy(update={"segments": ["x"]}),
    ):
        assert layout_signature(changed) != layout_signature(base)
    assert signature(base.model_copy(update={"description": "words"})) == signature(base)
