"""Statistics vectors to bytes and back."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from penchant.bandits import decode_stats, encode_stats
from penchant.errors import InvalidInput


def test_bytes_are_little_endian_float64() -> None:
    assert encode_stats([1.0, -2.5]) == struct.pack("<2d", 1.0, -2.5)
    assert decode_stats(struct.pack("<3d", 3.0, 0.0, 0.125), 3).tolist() == [3.0, 0.0, 0.125]


def test_round_trip_is_exact_and_gives_a_writable_copy() -> None:
    vec = np.random.default_rng(0).normal(size=30) * 1e6
    data = encode_stats(vec)
    assert len(data) == 30 * 8
    back = decode_stats(data, 30)
    assert np.array_equal(back, vec)
    back += 1.0  # writable, and the bytes are untouched
    assert np.array_equal(decode_stats(data, 30), vec)


def test_nothing_stored_means_zeros() -> None:
    assert decode_stats(None, 4).tolist() == [0.0] * 4
    assert decode_stats(b"", 0).shape == (0,)


@pytest.mark.parametrize(
    ("data", "width", "field"),
    [
        (b"\x00" * 15, 2, "stats"),
        (b"\x00" * 24, 2, "stats"),
        (struct.pack("<d", float("nan")), 1, "stats"),
        ("not bytes", 1, "stats"),
        (b"", -1, "width"),
    ],
)
def test_bad_bytes_are_refused(data: bytes, width: int, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_stats(data, width)
    assert info.value.field == field


def test_only_finite_vectors_are_encoded() -> None:
    for bad in ([1.0, np.inf], [[1.0, 2.0]], ["x"]):
        with pytest.raises(InvalidInput) as info:
            encode_stats(bad)
        assert info.value.field == "stats"
