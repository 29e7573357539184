"""Checked inputs of the fairness metrics: top-k lists at a cut-off, numeric arrays."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from penchant.data.toplists import PADDING, as_top_lists, check_top_lists
from penchant.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def is_numeric(array: npt.NDArray[np.generic]) -> bool:
    return bool(np.issubdtype(array.dtype, np.number))


def top_k(recommended: npt.ArrayLike, k: int, n_items: int) -> tuple[IntArray, BoolArray]:
    """The validated top-k codes and which of them are items (not padding)."""
    rec = as_top_lists(recommended)
    depth = rec.shape[1]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= depth:
        raise InvalidInput(f"k must be an integer in 1..{depth} (K), got {k!r}", field="k")
    top = rec[:, : int(k)].astype(np.int64)
    check_top_lists(top, n_items)
    return top, top != PADDING
