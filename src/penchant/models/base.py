"""The `Recommender` contract; the base class does id mapping, exclusions, batching and top-k."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.data.dataset import IdIndex
from penchant.errors import InvalidInput, NotFound
from penchant.models.arrays import ARRAYS_DIR, blank_users, load_arrays, save_arrays
from penchant.types import Hyperparameters

ScoreArray = np.ndarray[Any, np.dtype[np.float32]]
CodeArray = np.ndarray[Any, np.dtype[np.int64]]
IdArray = np.ndarray[Any, np.dtype[np.str_]]
Arrays = dict[str, np.ndarray[Any, Any]]

#: Scores computed per batch are at most this many floats (64 MiB of float32).
_BATCH_CELLS = 1 << 24
ARTIFACT_FORMAT = 1


class NotFitted(InvalidInput):
    """A model was asked to recommend before `fit` or `load`."""


class Recommender(Hyperparameters, ABC):
    """A model that scores every catalog item for a user; the base class does the rest.

    Subclasses follow the scikit-learn contract: `__init__` stores its keyword
    hyperparameters unchanged, `_fit` sets learned state in attributes ending in `_`, and
    `_score` returns a dense (users x items) score block. The base class keeps the id
    vocabularies and each training user's history, maps ids, falls back to popularity for
    users it knows nothing about, removes seen and excluded items, and cuts the top k.

    Attributes:
        name: the registry name (`popular`, `itemknn`, ...), also used in artifacts.
        folds_in: whether `_score` uses the given history for users (True for every model
            here); a model that only has learned per-user state would set it False.
        popular_for_cold: whether users with an empty history (new, or erased) get the
            popularity ranking instead of the model's own scores.
        needs_text: whether `fit` reads the items' texts (`Dataset.item_texts`).
    """

    name: ClassVar[str]
    folds_in: ClassVar[bool] = True
    popular_for_cold: ClassVar[bool] = True
    needs_text: ClassVar[bool] = False

    item_ids_: IdArray
    user_ids_: IdArray
    history_: sp.csr_matrix
    popularity_: ScoreArray

    # -- the contract a model implements ----------------------------------------------------
    @abstractmethod
    def _fit(self, data: Dataset) -> None:
        """Learn from `data` (the base class has already set the vocabularies)."""

    @abstractmethod
    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        """Scores of every item for a batch of users.

        Args:
            users: user codes, -1 for a user the model did not train on.
            history: (batch x n_items) weights of what each user consumed.

        Returns:
            A (batch x n_items) float32 array; higher is better.
        """

    def _arrays(self) -> Arrays:
        """Learned arrays to save (besides the vocabularies and histories)."""
        return {}

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        """Set learned state from saved arrays."""

    def _forget(self, user: int) -> None:
        """Drop any learned per-user state of one user code."""

    # -- fitting and scoring ----------------------------------------------------------------
    def fit(self, data: Dataset) -> Self:
        """Learn from training data; returns the model itself.

        Raises:
            InvalidInput: the data is empty or the hyperparameters cannot be used with it.
        """
        if len(data) == 0:
            raise InvalidInput("cannot fit on an empty dataset")
        self._adopt(data)
        self._fit(data)
        return self

    def _adopt(self, data: Dataset) -> None:
        """Take the vocabularies, histories and popularity of the training data."""
        self._set_vocabularies(data.item_ids, data.user_ids)
        self.history_ = data.matrix
        self.popularity_ = data.item_counts.astype(np.float32)

    def _set_vocabularies(self, item_ids: IdArray, user_ids: IdArray) -> None:
        self.item_ids_ = item_ids
        self.user_ids_ = user_ids
        self._indexes: dict[str, IdIndex] = {}  # built on first lookup

    def reads_text(self) -> bool:
        """Whether fitting this model needs the items' texts (`needs_text`, or a member's)."""
        return self.needs_text

    def wants_text(self) -> bool:
        """Whether this model uses the items' texts when there are some."""
        return self.reads_text()

    @property
    def personalizes(self) -> bool:
        """Whether the fitted model's scores depend on the person. The default surface leaves
        out the optional source of a model that does not (see `ranking.default_stages`)."""
        return True

    @property
    def fitted(self) -> bool:
        """Whether the model has been fitted or loaded."""
        return hasattr(self, "item_ids_")

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFitted(f"{type(self).__name__} is not fitted; call fit() or load() first")

    def scores(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        """Scores of every item for a batch; users with an empty history get popularity."""
        self._check_fitted()
        out = np.asarray(self._score(users, history), dtype=np.float32)
        cold = np.diff(history.indptr) == 0
        if self.popular_for_cold and cold.any():
            out[cold] = self.popularity_
        return out

    def rank(
        self,
        users: CodeArray,
        history: sp.csr_matrix | None = None,
        k: int = 10,
        *,
        exclude_history: bool = True,
        candidates: CodeArray | None = None,
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[CodeArray, ScoreArray]:
        """Top-k item codes for user codes: the fast path evaluation and serving use.

        Args:
            users: user codes (-1 for users the model did not train on).
            history: each user's consumed items (rows aligned with `users`); default their
                training history.
            k: list length.
            exclude_history: leave out the items in `history`.
            candidates: only these item codes may be recommended.
            exclude: (len(users) x n_items) matrix of further items to leave out.

        Returns:
            (codes, scores), each (len(users) x k); a row with fewer than k rankable items is
            padded with code -1 and score -inf.
        """
        self._check_fitted()
        if k < 1:
            raise InvalidInput(f"k: must be at least 1, got {k}")
        users = np.asarray(users, dtype=np.int64)
        if history is None:
            history = self._training_history(users)
        n_items = len(self.item_ids_)
        allowed: np.ndarray[Any, np.dtype[np.bool_]] | None = None
        if candidates is not None:
            allowed = np.zeros(n_items, dtype=bool)
            allowed[np.asarray(candidates, dtype=np.int64)] = True
        codes = np.full((len(users), k), -1, dtype=np.int64)
        top = np.full((len(users), k), -np.inf, dtype=np.float32)
        step = max(1, _BATCH_CELLS // max(n_items, 1))
        for start in range(0, len(users), step):
            end = min(start + step, len(users))
            block = self.scores(users[start:end], history[start:end])
            if exclude_history:
                mask_entries(block, history[start:end])
            if exclude is not None:
                mask_entries(block, exclude[start:end])
            if allowed is not None:
                block[:, ~allowed] = -np.inf
            codes[start:end], top[start:end] = top_k(block, k)
        return codes, top

    def _training_history(self, users: CodeArray) -> sp.csr_matrix:
        """Rows of the training history for user codes; empty rows for -1."""
        known = users >= 0
        rows = np.where(known, users, 0)
        hist = self.history_[rows]
        if not known.all():
            keep = sp.diags(known.astype(np.float32))
            hist = sp.csr_matrix(keep @ hist)
            hist.eliminate_zeros()
        return sp.csr_matrix(hist)

    # -- ids in, ids out ---------------------------------------------------------------------
    def recommend(
        self,
        users: Sequence[str],
        k: int = 10,
        *,
        history: Sequence[Sequence[str]] | None = None,
        exclude_seen: bool = True,
        candidates: Sequence[str] | None = None,
        exclude: Sequence[Sequence[str]] | None = None,
    ) -> tuple[IdArray, ScoreArray]:
        """Recommend items to users by id.

        Args:
            users: user ids; ids the model has not seen are cold-start users.
            k: list length.
            history: per user, the items they consumed (the user's state), used instead of
                the training history: new or anonymous users, or fresher events.
            exclude_seen: leave out the items of the user's history.
            candidates: only these item ids may be recommended.
            exclude: per user, further item ids to leave out.

        Returns:
            (item ids, scores), each (len(users) x k); rows with fewer than k rankable items
            are padded with the id "" and score -inf.
        """
        self._check_fitted()
        codes = self.user_codes(users)
        hist = None if history is None else self._rows(history, len(users), "history")
        if hist is not None:
            # the given history is the user's state: learned per-user factors are not used
            codes = np.full(len(users), -1, dtype=np.int64)
        if hist is not None and not self.folds_in:
            raise InvalidInput(f"{type(self).__name__} cannot recommend from a given history")
        excl = None if exclude is None else self._rows(exclude, len(users), "exclude")
        cand = None if candidates is None else self.item_codes(candidates)
        if cand is not None:
            cand = cand[cand >= 0]
        ranked, scores = self.rank(
            codes, hist, k, exclude_history=exclude_seen, candidates=cand, exclude=excl
        )
        ids = np.where(ranked >= 0, self.item_ids_[np.maximum(ranked, 0)], "")
        return ids.astype(np.str_), scores

    def similar_items(self, items: Sequence[str], k: int = 10) -> tuple[IdArray, ScoreArray]:
        """The k items most similar to each given item (never the item itself).

        Raises:
            NotFound: an item id is not in the model's catalog.
        """
        self._check_fitted()
        codes = self.item_codes(items)
        if (codes < 0).any():
            missing = items[int(np.flatnonzero(codes < 0)[0])]
            raise NotFound(f"item {missing!r} is not in the model")
        n = len(codes)
        one_hot = sp.csr_matrix(
            (np.ones(n, dtype=np.float32), (np.arange(n), codes)),
            shape=(n, len(self.item_ids_)),
        )
        ranked = np.full((n, k), -1, dtype=np.int64)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        step = max(1, _BATCH_CELLS // max(len(self.item_ids_), 1))
        for start in range(0, n, step):
            end = min(start + step, n)
            block = np.asarray(self._similar(codes[start:end], one_hot[start:end]), np.float32)
            block[np.arange(end - start), codes[start:end]] = -np.inf
            ranked[start:end], scores[start:end] = top_k(block, k)
        ids = np.where(ranked >= 0, self.item_ids_[np.maximum(ranked, 0)], "")
        return ids.astype(np.str_), scores

    def item_similarity(self, a: CodeArray, b: CodeArray) -> ScoreArray:
        """The (len(a) x len(b)) similarities of items `a` to items `b`, by code.

        What explanations use to name the consumed item behind a recommendation; models
        override it with something cheaper than scoring every item.
        """
        self._check_fitted()
        a = np.asarray(a, dtype=np.int64)
        one_hot = sp.csr_matrix(
            (np.ones(len(a), dtype=np.float32), (np.arange(len(a)), a)),
            shape=(len(a), len(self.item_ids_)),
        )
        block = np.asarray(self._similar(a, one_hot), dtype=np.float32)
        return np.asarray(block[:, np.asarray(b, dtype=np.int64)], dtype=np.float32)

    def _similar(self, items: CodeArray, one_hot: sp.csr_matrix) -> ScoreArray:
        """Similarity of every item to each given item; default: score a one-item history."""
        return self._score(np.full(len(items), -1, dtype=np.int64), one_hot)

    def forget_user(self, user: str) -> bool:
        """Remove everything the model holds about one user (erasure).

        Returns:
            Whether the model knew the user.
        """
        self._check_fitted()
        code = int(self.user_codes([user])[0])
        if code < 0:
            return False
        self._clear_user(code)
        return True

    def _clear_user(self, code: int) -> None:
        """Empty one user's history row and per-user state."""
        hist = self.history_
        start, end = int(hist.indptr[code]), int(hist.indptr[code + 1])
        if end > start:
            # two contiguous copies: several times faster than a boolean mask on 10M entries
            data = np.concatenate([hist.data[:start], hist.data[end:]])
            indices = np.concatenate([hist.indices[:start], hist.indices[end:]])
            indptr = hist.indptr.copy()
            indptr[code + 1 :] -= end - start
            self.history_ = sp.csr_matrix((data, indices, indptr), shape=hist.shape)
        self._forget(code)

    def user_codes(self, users: Sequence[str]) -> CodeArray:
        """Codes of user ids in the model's vocabulary; -1 for ids it has not seen."""
        if "users" not in self._indexes:
            self._indexes["users"] = IdIndex(self.user_ids_)
        return self._indexes["users"].codes(users)

    def item_codes(self, items: Sequence[str]) -> CodeArray:
        """Codes of item ids in the model's vocabulary; -1 for ids it has not seen."""
        if "items" not in self._indexes:
            self._indexes["items"] = IdIndex(self.item_ids_)
        return self._indexes["items"].codes(items)

    def _rows(self, lists: Sequence[Sequence[str]], n: int, what: str) -> sp.csr_matrix:
        """A (n x n_items) 0/1 matrix of per-user item id lists; unknown ids are ignored."""
        if len(lists) != n:
            raise InvalidInput(f"{what}: {len(lists)} lists for {n} users")
        flat = [item for row in lists for item in row]
        codes = self.item_codes(flat)
        row_of = np.repeat(np.arange(n), [len(r) for r in lists])
        ok = codes >= 0
        m = sp.csr_matrix(
            (np.ones(int(ok.sum()), np.float32), (row_of[ok], codes[ok])),
            shape=(n, len(self.item_ids_)),
        )
        m.data[:] = 1.0  # an item listed twice is still one consumption
        return m

    # -- artifacts ---------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the model to a folder: `arrays/*.npy` and `model.json`, never pickle."""
        self._check_fitted()
        path.mkdir(parents=True, exist_ok=True)
        hist = self.history_
        arrays: Arrays = {
            "item_ids": self.item_ids_,
            "user_ids": self.user_ids_,
            "history_indptr": hist.indptr,
            "history_indices": hist.indices,
            "history_data": hist.data,
            "popularity": self.popularity_,
        }
        own = self._arrays()
        clash = set(own) & set(arrays)
        if clash:
            raise ValueError(f"{type(self).__name__}._arrays reuses reserved names {clash}")
        save_arrays(path / ARRAYS_DIR, {**arrays, **own})
        meta = {
            "format": ARTIFACT_FORMAT,
            "model": self.name,
            "params": self._saved_params(),
            **self._meta(),
        }
        (path / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def _saved_params(self) -> dict[str, Any]:
        """The hyperparameters as JSON (a model with nested models overrides this)."""
        return _jsonable(self.get_params())

    def _meta(self) -> dict[str, Any]:
        """Extra JSON metadata a model saves (e.g. nested models)."""
        return {}

    def _load_state(self, path: Path, meta: Mapping[str, Any]) -> None:
        """Restore the learned state of a freshly constructed model from its folder."""
        if (path / ARRAYS_DIR).is_dir():
            arrays = load_arrays(path / ARRAYS_DIR)
        else:  # written before arrays were saved one file each
            with np.load(path / "arrays.npz", allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        self._set_vocabularies(arrays.pop("item_ids"), arrays.pop("user_ids"))
        self.history_ = sp.csr_matrix(
            (
                arrays.pop("history_data"),
                arrays.pop("history_indices"),
                arrays.pop("history_indptr"),
            ),
            shape=(len(self.user_ids_), len(self.item_ids_)),
        )
        self.popularity_ = arrays.pop("popularity")
        self._restore(arrays, meta)
        for code in blank_users(self.user_ids_):  # people erased from the saved artifact
            self._clear_user(int(code))


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, np.integer | np.floating):
            value = value.item()
        out[name] = value
    json.dumps(out)  # fails loudly on a hyperparameter that cannot be saved
    return out


def binarized(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A copy with every stored value set to 1 (any interaction is one positive)."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data[:] = 1.0
    return out


def mask_entries(block: ScoreArray, rows: sp.csr_matrix) -> None:
    """Set the entries of `rows`' nonzeros to -inf in a dense block."""
    rows = sp.csr_matrix(rows)
    block[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices] = -np.inf


def top_k(block: ScoreArray, k: int) -> tuple[CodeArray, ScoreArray]:
    """The k best columns of each row, best first; -inf entries become code -1."""
    n, m = block.shape
    kk = min(k, m)
    if kk < m:
        part = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(m), (n, m)).copy()
    vals = np.take_along_axis(block, part, axis=1)
    # within a list, equal scores are ordered by item code
    order = np.lexsort((part, -vals), axis=1)
    codes = np.take_along_axis(part, order, axis=1).astype(np.int64)
    scores = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    codes[~np.isfinite(scores) & (scores < 0)] = -1
    if kk < k:
        codes = np.pad(codes, ((0, 0), (0, k - kk)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return codes, scores


def unit_cosines(unit: ScoreArray, a: CodeArray, b: CodeArray | None = None) -> ScoreArray:
    """Cosines of the unit item vectors of items `a` to those of `b` (default every item)."""
    right = unit if b is None else unit[np.asarray(b, dtype=np.int64)]
    return np.asarray(unit[np.asarray(a, dtype=np.int64)] @ right.T, dtype=np.float32)
