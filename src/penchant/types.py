"""Shared vocabulary: ids, event types, consent purposes, and the `Candidates` table."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import numpy as np

TenantId = str
UserId = str
ItemId = str
SessionId = str

#: Event types every deployment understands; more can be declared in config.
BUILTIN_EVENT_TYPES: Final[tuple[str, ...]] = (
    "impression",
    "view",
    "click",
    "like",
    "dislike",
    "rating",
    "add_to_cart",
    "purchase",
    "share",
    "dwell",
    "skip",
    "dismiss",
    "conversion",
)


class Purpose(StrEnum):
    """Purposes a user can consent to, each separately."""

    PERSONALIZATION = "personalization"
    ANALYTICS = "analytics"
    ADVERTISING = "advertising"


class Scope(StrEnum):
    """What an API key may do."""

    EVENTS_WRITE = "events:write"
    RECS_READ = "recs:read"
    CATALOG_WRITE = "catalog:write"
    CATALOG_READ = "catalog:read"
    ADMIN = "admin"


#: Per-row text of a `Candidates` table (reasons, sources): a numpy array of objects, so
#: that taking rows is one indexing operation rather than a Python loop.
TextColumn = np.ndarray[Any, np.dtype[np.object_]]


def text_column(values: Any) -> TextColumn:
    """An object array of the strings (or None) in values."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


@dataclass
class Candidates:
    """The one table every ranking stage takes and returns: items plus named columns.

    Attributes:
        items: item codes in the serving catalog (int64), one per row, no duplicates.
        columns: named float32 columns aligned with `items` (each source's score, the
            combined `score`, ...); a column a stage has not written is absent.
        reasons: per row, a short human-readable reason, or None (an object array).
        sources: per row, the name of the source that contributed most, or "" (an object
            array).
    """

    items: np.ndarray[Any, np.dtype[np.int64]]
    columns: dict[str, np.ndarray[Any, np.dtype[np.float32]]] = field(default_factory=dict)
    reasons: TextColumn = field(default_factory=lambda: text_column(()))
    sources: TextColumn = field(default_factory=lambda: text_column(()))

    def __post_init__(self) -> None:
        self.items = np.asarray(self.items, dtype=np.int64)
        n = len(self.items)
        if n and not len(self.reasons):
            self.reasons = np.full(n, None, dtype=object)
        if n and not len(self.sources):
            self.sources = np.full(n, "", dtype=object)
        for name, column in self.columns.items():
            if len(column) != n:
                raise ValueError(f"column {name!r} has {len(column)} rows for {n} items")
        if len(self.reasons) != n or len(self.sources) != n:
            raise ValueError(f"reasons and sources need {n} rows")

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def empty(cls) -> Candidates:
        """No candidates."""
        return cls(np.zeros(0, dtype=np.int64))

    def column(self, name: str, default: float = 0.0) -> np.ndarray[Any, np.dtype[np.float32]]:
        """A column, or `default` for every row when no stage has written it."""
        found = self.columns.get(name)
        if found is None:
            return np.full(len(self.items), default, dtype=np.float32)
        return found

    def take(self, rows: np.ndarray[Any, Any]) -> Candidates:
        """The rows at positions `rows` (an index array or a boolean mask), in that order."""
        index = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)
        return Candidates(
            self.items[index],
            {name: col[index] for name, col in self.columns.items()},
            self.reasons[index],
            self.sources[index],
        )
