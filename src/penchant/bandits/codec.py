"""Bytes for per-arm statistics vectors, so a key-value store can hold them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from penchant.bandits.validation import FloatArray, as_context
from penchant.errors import InvalidInput

#: Stored vectors are little-endian float64 whatever the machine.
_DTYPE = np.dtype("<f8")


def encode_stats(vec: npt.ArrayLike) -> bytes:
    """A statistics vector as bytes (8 little-endian bytes per float64).

    Raises:
        InvalidInput: vec is not a 1-D vector of finite numbers.
    """
    values = as_context(vec, "stats")
    return values.astype(_DTYPE, copy=False).tobytes()


def decode_stats(data: bytes | None, width: int) -> FloatArray:
    """A statistics vector from `encode_stats` bytes; None (nothing stored) is all zeros.

    Args:
        data: the stored bytes, or None for an arm never seen.
        width: the vector's expected length (`Policy.width`).

    Returns:
        A new, writable float64 vector of `width`.

    Raises:
        InvalidInput: the bytes do not hold exactly `width` finite floats.
    """
    if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 0:
        raise InvalidInput(f"width: must be a non-negative integer, got {width!r}", field="width")
    if data is None:
        return np.zeros(int(width))
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput(f"stats: must be bytes, got {type(data).__name__}", field="stats")
    if len(data) != width * _DTYPE.itemsize:
        raise InvalidInput(
            f"stats: {len(data)} bytes do not hold {width} float64 values "
            f"({width * _DTYPE.itemsize} bytes)",
            field="stats",
        )
    values = np.frombuffer(data, dtype=_DTYPE).astype(np.float64)
    if not np.isfinite(values).all():
        raise InvalidInput("stats: the stored vector holds NaN or infinity", field="stats")
    return values
