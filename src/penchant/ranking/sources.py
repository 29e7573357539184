"""Candidate sources: each proposes items with a score in [0, 1] under its own column."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.models.ann import ItemIndex
from penchant.models.factors import FactorModel
from penchant.ranking.catalog import micros
from penchant.ranking.query import CodeArray, Query, Serving
from penchant.types import Candidates

ScoreArray = np.ndarray[Any, np.dtype[np.float32]]


def merge(base: Candidates, new: Candidates) -> Candidates:
    """The union of two candidate tables; a column missing on one side is 0 there.

    Rows keep the order items were first proposed in. A dict finds the rows of `new` in
    `base`: on lists of a few hundred items it is several times faster than sorting.
    """
    if not len(base):
        return new
    if not len(new):
        return base
    row_of = dict(zip(base.items.tolist(), range(len(base)), strict=True))
    rows = np.fromiter((row_of.get(i, -1) for i in new.items.tolist()), np.int64, len(new))
    fresh = rows < 0
    rows[fresh] = np.arange(len(base), len(base) + int(np.count_nonzero(fresh)))
    unique = np.concatenate([base.items, new.items[fresh]])
    columns: dict[str, ScoreArray] = {}
    for name, col in base.columns.items():
        columns[name] = out = np.zeros(len(unique), dtype=np.float32)
        out[: len(base)] = col
    for name, col in new.columns.items():
        out = columns.setdefault(name, np.zeros(len(unique), dtype=np.float32))
        out[rows] = np.maximum(out[rows], col)
    return Candidates(unique, columns)


def normalized(scores: ScoreArray) -> ScoreArray:
    """Scores of one list mapped to (0, 1]: the best is 1, the worst of the list above 0."""
    if not len(scores):
        return scores
    top, low = float(scores.max()), float(scores.min())
    if top == low:
        return np.ones(len(scores), dtype=np.float32)
    return np.asarray(0.05 + 0.95 * (scores - low) / (top - low), dtype=np.float32)


def _top(
    scores: ScoreArray, eligible: np.ndarray[Any, Any], n: int
) -> tuple[CodeArray, ScoreArray]:
    """The n best eligible codes of a full score vector, best first."""
    scores = np.where(eligible[: len(scores)], scores, -np.inf).astype(np.float32)
    n = min(n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-scores, n - 1)[:n]
    order = part[np.lexsort((part, -scores[part]))]
    return order.astype(np.int64), scores[order]


@dataclass
class ModelSource:
    """A model's personal ranking from the person's history (training history plus what they
    did since); new users without history get nothing here.

    Options: `model` (a model of the bundle), `n` candidates (at least twice the list's
    length k), `weight` in the score, `name` of its column (default the model name),
    `history` = `user` (the person's) or `session` (the session's items only: the session
    model).
    """

    model: str
    n: int = 100
    weight: float = 1.0
    name: str = ""
    history: str = "user"

    def __post_init__(self) -> None:
        self.name = self.name or (self.model if self.history == "user" else "session")

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        if self.history == "session":
            codes, user = query.session, -1
        else:
            codes, user = query.history, query.user_code
            if user >= 0 and query.fresh:
                user = -1  # fold in the fresher history instead of the learned state
        model = serving.models[self.model]
        n_model = serving.catalog.n_model
        known = codes[codes < n_model]
        n = max(self.n, 2 * query.k)
        if user < 0 and not len(known):
            return candidates
        index = serving.indexes.get(self.model)
        if index is not None and isinstance(model, FactorModel) and user >= 0:
            # a trained user's learned factors: no history matrix needed
            vector = model.user_factors_[user : user + 1]
            found, scores = _search(index, vector, query, n)
            return merge(candidates, Candidates(found, {self.name: normalized(scores)}))
        known = np.unique(known)
        row = sp.csr_matrix(
            (np.ones(len(known), dtype=np.float32), known, np.array([0, len(known)])),
            shape=(1, n_model),
        )
        users = np.array([user], dtype=np.int64)
        if index is not None and isinstance(model, FactorModel):
            found, scores = _search(index, model.user_vectors(users, row), query, n)
        else:
            found, scores = _top(model.scores(users, row)[0], query.eligible, n)
        return merge(candidates, Candidates(found, {self.name: normalized(scores)}))


def _search(index: ItemIndex, vector: Any, query: Query, n: int) -> tuple[CodeArray, ScoreArray]:
    """The index's top-n among the request's eligible items."""
    codes, scores = index.search(vector, n, allowed=query.eligible[: index.n_items])
    keep = codes[0] >= 0
    return codes[0][keep], scores[0][keep]


@dataclass
class SimilarSource:
    """Items like the one on the page (`context.page_item`); nothing without one."""

    model: str
    n: int = 100
    weight: float = 1.0
    name: str = "similar"

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        page = query.request.context.page_item
        if page is None:
            return candidates
        code = int(serving.catalog.codes([page])[0])
        if not 0 <= code < serving.catalog.n_model:
            return candidates
        model = serving.models[self.model]
        n_model = serving.catalog.n_model
        scores = model.item_similarity(np.array([code]), np.arange(n_model))[0]
        scores[code] = -np.inf
        scores[scores <= 0] = -np.inf
        found, top = _top(scores, query.eligible, self.n)
        query.notes["page_item"] = code
        return merge(candidates, Candidates(found, {self.name: normalized(top)}))


def _first_eligible(order: CodeArray, mask: np.ndarray[Any, Any], n: int) -> CodeArray:
    """The first n codes of `order` that `mask` allows, looking at a growing prefix only."""
    size = 4 * n
    while True:
        head = order[:size]
        picked: CodeArray = head[mask[head]]
        if len(picked) >= n or size >= len(order):
            return picked[:n]
        size *= 4


@dataclass
class TrendingSource:
    """The most popular (or trending) items, within the browsed category when there is one:
    `context.category`, else the first category of the page item (`scope="context"`)."""

    model: str = "popular"
    n: int = 100
    weight: float = 0.2
    name: str = "trending"
    scope: str = "context"

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        catalog = serving.catalog
        key = f"order:{self.model}"
        order = serving.cache.get(key)
        if order is None:
            scores = serving.models[self.model].scores(
                np.array([-1]), sp.csr_matrix((1, catalog.n_model), dtype=np.float32)
            )[0]
            order = np.argsort(-scores, kind="stable")
            serving.cache[key] = order
            serving.cache[f"{key}:scores"] = scores
        scores = serving.cache[f"{key}:scores"]
        mask = query.eligible
        category = self._category(query, serving)
        if category is not None:
            mask = mask & catalog.has_label("category", [category])
            query.notes["trending_in"] = category
        picked = _first_eligible(order, mask, self.n)
        if not len(picked):
            return candidates
        return merge(candidates, Candidates(picked, {self.name: normalized(scores[picked])}))

    def _category(self, query: Query, serving: Serving) -> str | None:
        if self.scope != "context":
            return None
        context = query.request.context
        if context.category is not None:
            return context.category
        if context.page_item is not None:
            code = int(serving.catalog.codes([context.page_item])[0])
            if code >= 0:
                names = serving.catalog.label_names(code, "category")
                return names[0] if names else None
        return None


@dataclass
class FollowedProviderSource:
    """New items (published within `days`) from providers the person keeps coming back to
    (at least `min_items` of their recent items): "new from a provider you follow"."""

    n: int = 50
    weight: float = 1.0
    name: str = "followed"
    days: float = 7.0
    min_items: int = 2

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        catalog = serving.catalog
        providers = catalog.provider[query.history[:50]]
        providers = providers[providers >= 0]
        if not len(providers):
            return candidates
        values, counts = np.unique(providers, return_counts=True)
        followed = values[counts >= self.min_items]
        if not len(followed):
            return candidates
        since = micros(query.now - timedelta(days=self.days))
        codes = catalog.items_with(followed)
        codes = codes[(catalog.published[codes] >= since) & query.eligible[codes]]
        if not len(codes):
            return candidates
        newest = codes[np.argsort(-catalog.published[codes], kind="stable")][: self.n]
        age = (micros(query.now) - catalog.published[newest]).astype(np.float64)
        score = np.asarray(1.0 - age / (self.days * 86_400e6 + 1.0), dtype=np.float32)
        return merge(candidates, Candidates(newest, {self.name: np.clip(score, 0.05, 1.0)}))


@dataclass
class ContentSource:
    """Items whose text is close to what the person took lately, new items included.

    The profile is the content model's weighted mean of the vectors of the person's latest
    `recent` items (their history, then the session's), the newest weighing most
    (2^(-position / half_life_items)); without history, the page's item (`context.page_item`)
    is the profile. Items upserted after training are scored through their own vectors
    (`Serving.new_vectors`), so a new article can be recommended on the next request. No
    other source knows such items, so their scores go to a column of their own,
    `<name>_new`, weighted `new_weight`.
    """

    model: str = "content"
    n: int = 100
    weight: float = 0.5
    name: str = "content"
    recent: int = 50
    half_life_items: float = 10.0
    new_weight: float = 2.0

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        model = serving.models[self.model]
        vectors = getattr(model, "item_vectors_", None)
        if vectors is None:
            return candidates
        new = serving.new_vectors.get(self.model)
        every = vectors if new is None or not len(new) else np.vstack([vectors, new])
        codes = np.concatenate([query.session, query.history])[: self.recent]
        codes = codes[codes < len(every)]
        if len(codes):
            weights = np.exp2(-np.arange(len(codes)) / self.half_life_items).astype(np.float32)
        else:
            page = query.request.context.page_item
            code = -1 if page is None else int(serving.catalog.codes([page])[0])
            if not 0 <= code < len(every):
                return candidates
            codes, weights = np.array([code]), np.ones(1, dtype=np.float32)
        profile = weights @ every[codes]
        norm = float(np.linalg.norm(profile))
        if norm == 0:
            return candidates
        scores = np.asarray(every @ (profile / norm), dtype=np.float32)
        found, top = _top(scores, query.eligible, max(self.n, 2 * query.k))
        top = normalized(top)
        is_new = found >= serving.catalog.n_model
        columns = {
            self.name: np.where(is_new, 0.0, top).astype(np.float32),
            f"{self.name}_new": np.where(is_new, top, 0.0).astype(np.float32),
        }
        return merge(candidates, Candidates(found, columns))


@dataclass
class SequenceSource:
    """What comes next after the person's latest items, in order: a sequential model
    (`sasrec`, `session-knn`) given their recent items oldest first (`history` = `user`: the
    person's and the session's; `session`: the session's only)."""

    model: str
    n: int = 100
    weight: float = 1.0
    name: str = ""
    history: str = "user"
    recent: int = 50

    def __post_init__(self) -> None:
        self.name = self.name or self.model

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        model = serving.models[self.model]
        score_sequences = getattr(model, "score_sequences", None)
        if score_sequences is None:
            return candidates
        newest_first = query.session
        if self.history == "user":
            newest_first = np.concatenate([query.session, query.history])
        codes = newest_first[newest_first < serving.catalog.n_model][: self.recent]
        if not len(codes):
            return candidates
        _, first = np.unique(codes, return_index=True)  # a repeated item keeps its newest place
        ordered = codes[np.sort(first)][::-1]
        scores = np.asarray(score_sequences([ordered])[0], dtype=np.float32)
        scores[ordered] = -np.inf
        found, top = _top(scores, query.eligible, max(self.n, 2 * query.k))
        return merge(candidates, Candidates(found, {self.name: normalized(top)}))


@dataclass
class RankerSource:
    """The learned ranker (`hybrid`): its members' candidates, scored by LightGBM with the
    same features as in training, including the request's time and device."""

    model: str = "hybrid"
    n: int = 100
    weight: float = 2.0
    name: str = "ranker"

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        model = serving.models[self.model]
        rank_candidates = getattr(model, "rank_candidates", None)
        if rank_candidates is None:
            return candidates
        n_model = serving.catalog.n_model
        history = query.history[query.history < n_model]
        recent = np.concatenate([query.session, query.history])
        recent = recent[recent < n_model]
        if not len(history) and not len(recent):
            return candidates
        known = np.unique(np.concatenate([history, recent]))
        row = sp.csr_matrix(
            (np.ones(len(known), dtype=np.float32), known, np.array([0, len(known)])),
            shape=(1, n_model),
        )
        user = -1 if query.fresh else query.user_code
        found, scores = rank_candidates(
            row,
            user=user,
            # a trained person with nothing new: their latest items as in training
            recent=None if user >= 0 else recent,
            now_us=micros(query.now),
            device=query.request.context.device,
        )
        keep = query.eligible[found]
        found, scores = (
            found[keep][: max(self.n, 2 * query.k)],
            scores[keep][: max(self.n, 2 * query.k)],
        )
        if not len(found):
            return candidates
        return merge(candidates, Candidates(found, {self.name: normalized(scores)}))
