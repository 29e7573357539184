"""Training data: one row per (user, item) pair with a weight and times, over id vocabularies."""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from penchant.errors import InvalidInput

if TYPE_CHECKING:
    from penchant.data.impressions import ImpressionLog

_MICROS_PER_DAY = 86_400 * 1_000_000
IntArray = np.ndarray[Any, np.dtype[np.int32]]
LongArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float32]]
StrArray = np.ndarray[Any, np.dtype[np.str_]]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Interactions as parallel arrays over a user and an item vocabulary.

    Every (user, item) pair appears at most once. Subsets made by splitting keep the
    vocabularies of the whole, so codes mean the same thing in train and test.

    Attributes:
        user_ids: the user vocabulary: code -> id.
        item_ids: the item vocabulary (the catalog that is ranked): code -> id.
        users: user code of each pair.
        items: item code of each pair.
        weights: strength of each pair (see `Weighting`).
        first_ts: time of the pair's first counted event, microseconds since the epoch.
        last_ts: time of its latest counted event.
        item_texts: the text of each item of the vocabulary (title, body, categories and
            tags; "" for an item without one), or None when no catalog text was given.
            What content models read; see `with_item_texts`.
        item_categories: (items x categories) 0/1 matrix of each item's categories, or None
            when the catalog gave none.
        impressions: the logged lists people were shown and what they took from them, over
            these vocabularies, or None; see `with_impressions`. `subset` (and so every
            split) leaves it out: impressions newer than a training side would tell it
            about the test period.
    """

    user_ids: StrArray
    item_ids: StrArray
    users: IntArray
    items: IntArray
    weights: FloatArray
    first_ts: LongArray
    last_ts: LongArray
    item_texts: StrArray | None = None
    item_categories: sp.csr_matrix | None = None
    impressions: ImpressionLog | None = None

    @classmethod
    def from_arrays(
        cls,
        user_ids: Sequence[str] | np.ndarray[Any, Any],
        item_ids: Sequence[str] | np.ndarray[Any, Any],
        users: np.ndarray[Any, Any],
        items: np.ndarray[Any, Any],
        weights: np.ndarray[Any, Any] | None = None,
        first_ts: np.ndarray[Any, Any] | None = None,
        last_ts: np.ndarray[Any, Any] | None = None,
    ) -> Dataset:
        """A dataset from codes that are already unique pairs (no aggregation here).

        Raises:
            InvalidInput: arrays of different lengths or codes outside the vocabularies.
        """
        n = len(users)
        arrays = {
            "items": items,
            "weights": weights if weights is not None else np.ones(n),
            "first_ts": first_ts if first_ts is not None else np.zeros(n),
            "last_ts": last_ts if last_ts is not None else np.zeros(n),
        }
        for name, array in arrays.items():
            if len(array) != n:
                raise InvalidInput(f"{name}: {len(array)} values for {n} users")
        u = np.asarray(users, dtype=np.int32)
        i = np.asarray(items, dtype=np.int32)
        uid = np.asarray(user_ids, dtype=np.str_)
        iid = np.asarray(item_ids, dtype=np.str_)
        if n and (u.min() < 0 or u.max() >= len(uid) or i.min() < 0 or i.max() >= len(iid)):
            raise InvalidInput("user or item code outside its vocabulary")
        first = np.asarray(arrays["first_ts"], dtype=np.int64)
        return cls(
            user_ids=uid,
            item_ids=iid,
            users=u,
            items=i,
            weights=np.asarray(arrays["weights"], dtype=np.float32),
            first_ts=first,
            last_ts=np.asarray(last_ts, dtype=np.int64) if last_ts is not None else first,
        )

    @property
    def n_users(self) -> int:
        """Size of the user vocabulary."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Size of the item vocabulary."""
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    @cached_property
    def matrix(self) -> sp.csr_matrix:
        """The users x items CSR matrix of weights (float32, sorted indices)."""
        m = sp.csr_matrix(
            (self.weights, (self.users, self.items)),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        m.sum_duplicates()
        m.sort_indices()
        return m

    @cached_property
    def item_counts(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Distinct users per item code."""
        return np.bincount(self.items, minlength=self.n_items).astype(np.int64)

    @cached_property
    def user_counts(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Distinct items per user code."""
        return np.bincount(self.users, minlength=self.n_users).astype(np.int64)

    def subset(self, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> Dataset:
        """The pairs where `mask` is true, over the same vocabularies, without impressions."""
        return Dataset(
            user_ids=self.user_ids,
            item_ids=self.item_ids,
            users=self.users[mask],
            items=self.items[mask],
            weights=self.weights[mask],
            first_ts=self.first_ts[mask],
            last_ts=self.last_ts[mask],
            item_texts=self.item_texts,
            item_categories=self.item_categories,
        )

    def with_item_texts(
        self, texts: Mapping[str, str], categories: Mapping[str, Sequence[str]] | None = None
    ) -> Dataset:
        """The same pairs with each item's text (`item id -> text`; items not given get "")
        and, when given, categories (`item id -> names`).

        Raises:
            InvalidInput: no item of the vocabulary has a text (the ids do not match).
        """
        column = np.array([texts.get(str(i), "") for i in self.item_ids], dtype=np.str_)
        if self.n_items and not np.char.str_len(column).any():
            raise InvalidInput(
                f"item texts: none of the {self.n_items} items has one "
                f"({len(texts)} texts given; do their ids match the events' items?)",
                field="items",
            )
        labels = None
        if categories is not None:
            names = sorted({c for cs in categories.values() for c in cs})
            code = {name: n for n, name in enumerate(names)}
            per_item = [categories.get(str(i), ()) for i in self.item_ids]
            rows = np.repeat(np.arange(self.n_items), [len(cs) for cs in per_item])
            cols = np.fromiter((code[c] for cs in per_item for c in cs), np.int64, len(rows))
            labels = sp.csr_matrix(
                (np.ones(len(rows), np.float32), (rows, cols)), shape=(self.n_items, len(names))
            )
            labels.data[:] = 1.0  # a category listed twice is still one
        return dataclasses.replace(self, item_texts=column, item_categories=labels)

    def with_impressions(self, log: ImpressionLog | None) -> Dataset:
        """The same pairs with a log of impressions and outcomes (None: without one).

        Raises:
            InvalidInput: the log's codes do not fit these vocabularies (it was built over
                another dataset).
        """
        if log is not None and len(log):
            users_ok = log.users.min() >= 0 and log.users.max() < self.n_users
            if not (users_ok and log.items.min() >= 0 and log.items.max() < self.n_items):
                raise InvalidInput(
                    "impressions: user or item codes outside the vocabularies", field="impressions"
                )
        return dataclasses.replace(self, impressions=log)

    def with_recency(self, half_life_days: float | None) -> Dataset:
        """The same pairs with each user's older items weighted down.

        A pair's weight is multiplied by 2^(-age / half_life_days), where age is the time
        from the pair's latest event to the same user's latest event in this dataset. Only
        this dataset's own times are used, so weighting a training split this way reveals
        nothing about the test period; and since the reference is per user, a user who was
        away for a year keeps full weight on what they did last.

        Args:
            half_life_days: the half-life; None returns the dataset unchanged.

        Raises:
            InvalidInput: a half-life that is not above 0.
        """
        if half_life_days is None:
            return self
        if not (math.isfinite(half_life_days) and half_life_days > 0):
            raise InvalidInput(
                "recency half-life: must be a number of days above 0", field="half_life_days"
            )
        newest = np.full(self.n_users, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(newest, self.users, self.last_ts)
        age_days = (newest[self.users] - self.last_ts) / _MICROS_PER_DAY
        decay = np.exp2(-age_days / half_life_days)
        # never all the way to zero: an old item is still part of the user's history
        weights = np.maximum(self.weights * decay, np.float32(1e-6) * self.weights)
        return dataclasses.replace(self, weights=weights.astype(np.float32))

    @cached_property
    def user_index(self) -> IdIndex:
        """Id -> code lookups of the user vocabulary."""
        return IdIndex(self.user_ids)

    @cached_property
    def item_index(self) -> IdIndex:
        """Id -> code lookups of the item vocabulary."""
        return IdIndex(self.item_ids)

    def user_codes(self, ids: Sequence[str]) -> LongArray:
        """Codes of user ids; -1 for ids not in the vocabulary."""
        return self.user_index.codes(ids)

    def item_codes(self, ids: Sequence[str]) -> LongArray:
        """Codes of item ids; -1 for ids not in the vocabulary."""
        return self.item_index.codes(ids)

    def write_csv(self, path: Path) -> None:
        """Write the pairs as `user,item,weight,timestamp` (seconds), sorted by user then time.

        This is the exact data an evaluation used, for anyone to check its numbers.
        """
        order = np.lexsort((self.items, self.first_ts, self.users))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["user", "item", "weight", "timestamp"])
            users = self.user_ids[self.users[order]]
            items = self.item_ids[self.items[order]]
            weights = self.weights[order]
            seconds = self.first_ts[order] // 1_000_000
            step = 100_000
            for start in range(0, len(order), step):
                end = start + step
                writer.writerows(
                    zip(
                        users[start:end].tolist(),
                        items[start:end].tolist(),
                        [f"{w:.6g}" for w in weights[start:end].tolist()],
                        seconds[start:end].tolist(),
                        strict=True,
                    )
                )


class IdIndex:
    """Id -> code lookups over a vocabulary, sorted once so that each lookup is a binary search.

    Serving looks up a handful of ids per request in vocabularies of millions; building a
    hash set of the whole vocabulary per call would cost more than the request itself.
    """

    def __init__(self, vocabulary: StrArray) -> None:
        self._order = np.argsort(vocabulary, kind="stable")
        self._sorted = vocabulary[self._order]

    def codes(self, ids: Sequence[str]) -> LongArray:
        """Codes of ids; -1 for ids not in the vocabulary."""
        query = np.asarray(list(ids), dtype=np.str_)
        if not len(query) or not len(self._sorted):
            return np.full(len(query), -1, dtype=np.int64)
        position = np.minimum(np.searchsorted(self._sorted, query), len(self._sorted) - 1)
        found = self._sorted[position] == query
        return np.where(found, self._order[position], -1).astype(np.int64)
