"""Top-k lists of item codes, the shape every offline metric reads: one row per person."""

from __future__ import annotations

from typing import Any

import numpy as np

from penchant.errors import InvalidInput

PADDING = -1
"""The item code that fills a list shorter than K; it holds its rank and never counts."""


def check_top_lists(rec: np.ndarray[Any, Any], n_items: int) -> None:
    """Refuse item codes outside 0..n_items-1 (other than `PADDING`) and an item twice in a row.

    Raises:
        InvalidInput: naming `recommended`.
    """
    if rec.size and (rec.min() < PADDING or rec.max() >= n_items):
        raise InvalidInput(
            f"recommended item codes must lie in 0..{n_items - 1}, or be {PADDING} for padding",
            field="recommended",
        )
    ordered = np.sort(rec, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != PADDING)
    if repeated.any():
        row = int(np.flatnonzero(repeated.any(axis=1))[0])
        raise InvalidInput(f"recommended row {row} holds an item twice", field="recommended")
