"""Shared vocabulary: ids, event types, consent purposes, and the `Candidates` table."""

from __future__ import annotations

import inspect
from enum import StrEnum
from typing import Any, Final, Self

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
    PRIVACY_EXPORT = "privacy:export"
    PRIVACY_ERASE = "privacy:erase"
    EXPERIMENTS_ADMIN = "experiments:admin"
    ADMIN = "admin"
    #: A key safe to ship in a browser or app: it sends events and reads recommendations,
    #: only for sessions the service issued (POST /v1/sessions), never by user id.
    PUBLIC = "public"


#: Per-row text of a `Candidates` table (reasons, sources): a numpy array of objects, so
#: that taking rows is one indexing operation rather than a Python loop.
TextColumn = np.ndarray[Any, np.dtype[np.object_]]


def text_column(values: Any) -> TextColumn:
    """An object array of the strings (or None) in values."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


class Candidates:
    """The one table every ranking stage takes and returns: items plus named columns.

    Attributes:
        items: item codes in the serving catalog (int64), one per row, no duplicates.
        columns: named float32 columns aligned with `items` (each source's score, the
            combined `score`, ...); a column a stage has not written is absent.
        reasons: per row, a short human-readable reason, or None (an object array).
        sources: per row, the name of the source that contributed most, or "" (an object
            array).

    A table is made several times per request, and most stages never read its text columns:
    `reasons` and `sources` are only made (all None, all "") when first read or taken.
    """

    __slots__ = ("_reasons", "_sources", "columns", "items")

    def __init__(
        self,
        items: np.ndarray[Any, Any],
        columns: dict[str, np.ndarray[Any, np.dtype[np.float32]]] | None = None,
        reasons: TextColumn | None = None,
        sources: TextColumn | None = None,
    ) -> None:
        self.items: np.ndarray[Any, np.dtype[np.int64]] = np.asarray(items, dtype=np.int64)
        self.columns = {} if columns is None else columns
        n = len(self.items)
        for name, column in self.columns.items():
            if len(column) != n:
                raise ValueError(f"column {name!r} has {len(column)} rows for {n} items")
        for text in (reasons, sources):
            if text is not None and len(text) != n:
                raise ValueError(f"reasons and sources need {n} rows")
        self._reasons = reasons
        self._sources = sources

    @property
    def reasons(self) -> TextColumn:
        """Per row, a short human-readable reason, or None."""
        if self._reasons is None:
            self._reasons = np.full(len(self.items), None, dtype=object)
        return self._reasons

    @reasons.setter
    def reasons(self, value: TextColumn) -> None:
        if len(value) != len(self.items):
            raise ValueError(f"reasons need {len(self.items)} rows")
        self._reasons = value

    @property
    def sources(self) -> TextColumn:
        """Per row, the name of the source that contributed most, or ""."""
        if self._sources is None:
            self._sources = np.full(len(self.items), "", dtype=object)
        return self._sources

    @sources.setter
    def sources(self, value: TextColumn) -> None:
        if len(value) != len(self.items):
            raise ValueError(f"sources need {len(self.items)} rows")
        self._sources = value

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
            None if self._reasons is None else self._reasons[index],
            None if self._sources is None else self._sources[index],
        )


class Hyperparameters:
    """The scikit-learn parameter contract, shared by models and bandit policies: keyword
    hyperparameters stored unchanged by `__init__`, read back by `get_params`."""

    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's hyperparameter names, in signature order."""
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return [
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in kinds
        ]

    def get_params(self) -> dict[str, Any]:
        """The constructor's hyperparameters, by name."""
        return {n: getattr(self, n) for n in self.param_names()}

    def clone(self, **changes: Any) -> Self:
        """An unfitted copy with the same hyperparameters, some of them changed."""
        return type(self)(**{**self.get_params(), **changes})

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
