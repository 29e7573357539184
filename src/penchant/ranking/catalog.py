"""The catalog as serving needs it: item codes shared with the models, and array attributes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.data.dataset import IdIndex
from penchant.models.text import item_text
from penchant.ranking.request import FilterSpec, Match, Range
from penchant.schema import Item

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
_NEVER = np.iinfo(np.int64).max
_LONG_AGO = np.iinfo(np.int64).min


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return int(moment.timestamp() * 1_000_000)


@dataclass
class ServingCatalog:
    """Every item that can be served, by code, with what filters, rules and reasons read.

    Codes `0 .. n_model - 1` are the models' own item codes (every model of a bundle shares
    one item vocabulary); catalog items the models have not seen (new items) follow.

    Attributes:
        ids: item id per code.
        n_model: how many codes the models know.
        titles: item title per code, or None.
        labels: (items x labels) 0/1 matrix of categories, providers and tags, each label
            named `category:X`, `provider:X` or `tag:X` in `label_names_`.
        provider: the provider label code per item (-1 for none).
        available: the item's `available` flag.
        listed: whether the item is in the catalog (every model item of a tenant that keeps
            no catalog; otherwise only items with a record).
        published, expires: microseconds since the epoch (the extremes when not set).
        attributes: per attribute name, its raw value per code (None where absent).
        new_texts: the text (`item_text`) of each item after the models' own, in code order:
            what content models embed to rank new items.
        keeps_catalog: whether the tenant had item records when this was built (else every
            model item is served).
    """

    ids: np.ndarray[Any, np.dtype[np.str_]]
    n_model: int
    titles: list[str | None]
    labels: sp.csr_matrix
    label_names_: np.ndarray[Any, np.dtype[np.str_]]
    provider: np.ndarray[Any, np.dtype[np.int64]]
    available: BoolArray
    listed: BoolArray
    published: np.ndarray[Any, np.dtype[np.int64]]
    expires: np.ndarray[Any, np.dtype[np.int64]]
    attributes: dict[str, list[Any]]
    new_texts: list[str] = field(default_factory=list)
    keeps_catalog: bool = True
    _index: IdIndex = field(init=False)
    _label_index: IdIndex = field(init=False)
    _by_label: sp.csc_matrix = field(init=False)
    _numeric: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = field(
        init=False, default_factory=dict
    )
    _columns: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = field(
        init=False, default_factory=dict
    )
    _kinds: dict[str, sp.csr_matrix] = field(init=False, default_factory=dict)
    _only: dict[str, np.ndarray[Any, np.dtype[np.int64]] | None] = field(
        init=False, default_factory=dict
    )
    _allowed: dict[tuple[str, int], BoolArray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._index = IdIndex(self.ids)
        self._label_index = IdIndex(self.label_names_)
        self._by_label = sp.csc_matrix(self.labels)

    @classmethod
    def build(cls, model_items: Sequence[str], items: Iterable[Item]) -> ServingCatalog:
        """The serving catalog of a bundle's item vocabulary and the stored catalog.

        Args:
            model_items: the models' item ids, by model code.
            items: the catalog records. Items only in the models have no labels and no
                dates; they are served only while the tenant keeps no catalog at all: once it
                does, an item without a record (never upserted, or deleted) is not served.
        """
        records = {item.id: item for item in items}
        known = set(model_items)
        ids = list(model_items) + sorted(i for i in records if i not in known)
        n = len(ids)
        titles: list[str | None] = [None] * n
        available = np.full(n, not records, dtype=bool)
        published = np.full(n, _LONG_AGO, dtype=np.int64)
        expires = np.full(n, _NEVER, dtype=np.int64)
        attributes: dict[str, list[Any]] = {}
        rows: list[int] = []
        names: list[str] = []
        for code, item_id in enumerate(ids):
            item = records.get(item_id)
            if item is None:
                continue
            titles[code] = item.title
            available[code] = item.available
            if item.published_at is not None:
                published[code] = micros(item.published_at)
            if item.expires_at is not None:
                expires[code] = micros(item.expires_at)
            labels = [f"category:{c}" for c in item.categories] + [f"tag:{t}" for t in item.tags]
            if item.provider is not None:
                labels.append(f"provider:{item.provider}")
            rows += [code] * len(labels)
            names += labels
            for name, value in item.attributes.items():
                column = attributes.get(name)
                if column is None:  # not setdefault: that would build a list per call
                    column = attributes[name] = [None] * n
                column[code] = value
        vocabulary = np.array(sorted(set(names)), dtype=np.str_)
        label_index = IdIndex(vocabulary)
        cols = label_index.codes(names) if names else np.zeros(0, dtype=np.int64)
        labels_matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (np.asarray(rows, dtype=np.int64), cols)),
            shape=(n, len(vocabulary)),
        )
        labels_matrix.data[:] = 1.0
        provider = np.full(n, -1, dtype=np.int64)
        with_provider = [(c, records[i].provider) for c, i in enumerate(ids) if i in records]
        with_provider = [(c, p) for c, p in with_provider if p is not None]
        if with_provider:
            where = np.array([c for c, _ in with_provider], dtype=np.int64)
            provider[where] = label_index.codes([f"provider:{p}" for _, p in with_provider])
        return cls(
            ids=np.array(ids, dtype=np.str_),
            n_model=len(model_items),
            titles=titles,
            labels=labels_matrix,
            label_names_=vocabulary,
            provider=provider,
            available=available,
            listed=available | np.array([i in records for i in ids], dtype=bool),
            published=published,
            expires=expires,
            attributes=attributes,
            new_texts=[
                item_text(records[i]) if i in records else "" for i in ids[len(model_items) :]
            ],
            keeps_catalog=bool(records),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def extended(self, items: Sequence[Item]) -> ServingCatalog:
        """This catalog with items it does not hold yet appended (codes after the last).

        What a write of new items needs at once, without reading the whole catalog again:
        the rows of the new items only are built, and the arrays are joined.

        Raises:
            ValueError: an item is in the catalog already (an update needs `build`), or the
                catalog was built without records (the first record changes what is served).
        """
        if not self.keeps_catalog or (self.codes([i.id for i in items]) >= 0).any():
            raise ValueError("extended() takes new items of a catalog with records only")
        tail = ServingCatalog.build([], items)
        names = list(self.label_names_)
        known = {name: code for code, name in enumerate(names)}
        remap = np.empty(len(tail.label_names_), dtype=np.int64)
        for code, name in enumerate(tail.label_names_.tolist()):
            if name not in known:
                known[name] = len(names)
                names.append(name)
            remap[code] = known[name]
        width = len(names)
        head = sp.csr_matrix(
            (self.labels.data, self.labels.indices, self.labels.indptr),
            shape=(len(self), width),
        )
        moved = sp.csr_matrix(
            (tail.labels.data, remap[tail.labels.indices], tail.labels.indptr),
            shape=(len(tail), width),
        )
        tail_provider = np.full(len(tail), -1, dtype=np.int64)
        has_provider = tail.provider >= 0
        tail_provider[has_provider] = remap[tail.provider[has_provider]]
        attributes = {}
        for name in set(self.attributes) | set(tail.attributes):
            attributes[name] = self.attributes.get(name, [None] * len(self)) + tail.attributes.get(
                name, [None] * len(tail)
            )
        return ServingCatalog(
            ids=np.concatenate([self.ids, tail.ids]),
            n_model=self.n_model,
            titles=self.titles + tail.titles,
            labels=sp.csr_matrix(sp.vstack([head, moved])),
            label_names_=np.array(names, dtype=np.str_),
            provider=np.concatenate([self.provider, tail_provider]),
            available=np.concatenate([self.available, tail.available]),
            listed=np.concatenate([self.listed, tail.listed]),
            published=np.concatenate([self.published, tail.published]),
            expires=np.concatenate([self.expires, tail.expires]),
            attributes=attributes,
            new_texts=self.new_texts + tail.new_texts,
        )

    def codes(self, item_ids: Sequence[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Codes of item ids, -1 for unknown ones."""
        return self._index.codes(item_ids)

    def name(self, code: int) -> str:
        """How a reason names an item: its title, else its id."""
        return self.titles[code] or str(self.ids[code])

    def has_label(self, kind: str, values: Sequence[str]) -> BoolArray:
        """Per item: whether it carries any of the labels `kind:value`."""
        wanted = self._label_index.codes([f"{kind}:{v}" for v in values])
        out = np.zeros(len(self.ids), dtype=bool)
        by_label = self._by_label
        for column in wanted[wanted >= 0]:
            out[by_label.indices[by_label.indptr[column] : by_label.indptr[column + 1]]] = True
        return out

    def kind_labels(self, kind: str) -> sp.csr_matrix:
        """The (items x labels of one kind) 0/1 matrix, e.g. each item's categories."""
        cached = self._kinds.get(kind)
        if cached is None:
            cached = sp.csr_matrix(self.labels[:, self.label_columns(kind)])
            self._kinds[kind] = cached
        return cached

    def only_label(self, kind: str) -> np.ndarray[Any, np.dtype[np.int64]] | None:
        """When no item carries more than one label of `kind`: per item, the column of its
        label in `kind_labels(kind)` (-1 for none); otherwise None."""
        if kind not in self._only:
            matrix = self.kind_labels(kind)
            counts = np.diff(matrix.indptr)
            only = None
            if not len(counts) or counts.max() <= 1:
                only = np.full(len(counts), -1, dtype=np.int64)
                only[counts == 1] = matrix.indices[matrix.indptr[:-1][counts == 1]]
            self._only[kind] = only
        return self._only[kind]

    def items_with(self, labels: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The codes of the items carrying any of the given label codes (e.g. providers)."""
        by_label = self._by_label
        parts = [by_label.indices[by_label.indptr[c] : by_label.indptr[c + 1]] for c in labels]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts)).astype(np.int64)

    def label_columns(self, kind: str) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The columns of `labels` that are labels of one kind (`category`, `provider`, `tag`)."""
        cached = self._columns.get(kind)
        if cached is None:
            names = self.label_names_
            hits = np.char.startswith(names, f"{kind}:") if len(names) else np.zeros(0, bool)
            cached = np.flatnonzero(hits).astype(np.int64)
            self._columns[kind] = cached
        return cached

    def label_names(self, code: int, kind: str) -> list[str]:
        """The values of one kind of label (e.g. `category`) an item carries."""
        row = self.labels.indices[self.labels.indptr[code] : self.labels.indptr[code + 1]]
        prefix = f"{kind}:"
        names = [str(self.label_names_[c]) for c in row]
        return [n[len(prefix) :] for n in names if n.startswith(prefix)]

    def in_range(self, name: str, spec: Range) -> BoolArray:
        """Per item: whether attribute `name` satisfies `spec` (absent values never do)."""
        values = self.attributes.get(name)
        if values is None:
            return np.zeros(len(self.ids), dtype=bool)
        ok = np.ones(len(self.ids), dtype=bool)
        if spec.min is not None or spec.max is not None:
            numbers = self._numbers(name, values)
            with np.errstate(invalid="ignore"):
                if spec.min is not None:
                    ok &= numbers >= spec.min
                if spec.max is not None:
                    ok &= numbers <= spec.max
        if spec.any_of is not None:
            allowed = {_hashable(v) for v in spec.any_of}
            ok &= np.fromiter(
                (_hashable(v) in allowed for v in values), dtype=bool, count=len(values)
            )
        return ok

    def _numbers(self, name: str, values: list[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        cached = self._numeric.get(name)
        if cached is None:
            cached = np.array(
                [
                    float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
                    for v in values
                ],
                dtype=np.float64,
            )
            self._numeric[name] = cached
        return cached

    def allowed(self, spec: FilterSpec, now: datetime) -> BoolArray:
        """Per item: whether it passes the catalog conditions of `spec` at time `now`.

        A fresh array the caller may change. The same filters within one second reuse one
        computation (most requests of a surface share them); availability and dates are
        read at that second's start, so expiry takes effect within a second.
        """
        key = (spec.model_dump_json(), micros(now) // 1_000_000)
        cached = self._allowed.get(key)
        if cached is None:
            if len(self._allowed) > 256:
                self._allowed.clear()
            cached = self._allowed[key] = self._compute_allowed(spec, now)
        return cached.copy()

    def _compute_allowed(self, spec: FilterSpec, now: datetime) -> BoolArray:
        ok = np.ones(len(self.ids), dtype=bool)
        if spec.available_only:
            t = micros(now)
            ok &= self.available & (self.expires > t) & (self.published <= t)
        if spec.categories is not None:
            ok &= self.has_label("category", spec.categories)
        if spec.exclude_categories:
            ok &= ~self.has_label("category", spec.exclude_categories)
        if spec.providers is not None:
            ok &= self.has_label("provider", spec.providers)
        if spec.exclude_providers:
            ok &= ~self.has_label("provider", spec.exclude_providers)
        for name, condition in spec.attributes.items():
            ok &= self.in_range(name, condition)
        return ok

    def matches(self, match: Match) -> BoolArray:
        """Per item: whether a rule's match applies (any id or label, and every attribute)."""
        hit = np.zeros(len(self.ids), dtype=bool)
        if match.item_ids:
            codes = self.codes(match.item_ids)
            hit[codes[codes >= 0]] = True
        for kind, values in (
            ("category", match.categories),
            ("provider", match.providers),
            ("tag", match.tags),
        ):
            if values:
                hit |= self.has_label(kind, values)
        if not (match.item_ids or match.categories or match.providers or match.tags):
            hit[:] = True  # attributes alone
        for name, condition in match.attributes.items():
            hit &= self.in_range(name, condition)
        return hit


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
