"""The engine: one model version, its catalog and pipelines, answering ranking requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.errors import InvalidInput, NotFound
from penchant.models.ann import ItemIndex
from penchant.models.base import Recommender
from penchant.models.content import ContentModel
from penchant.models.factors import FactorModel
from penchant.ranking.catalog import ServingCatalog, micros
from penchant.ranking.pipeline import Pipeline, build_pipeline, default_stages
from penchant.ranking.query import CodeArray, Query, Serving
from penchant.ranking.request import FilterSpec, RankingRequest, RequestContext
from penchant.ranking.rerank import person_seed
from penchant.ranking.stages import SCORE
from penchant.ranking.state import Activity
from penchant.schema import Item

_EMPTY = Activity([], [], [])


@dataclass(frozen=True)
class Ranked:
    """An answer: item ids with scores and reasons, and what produced them."""

    item_ids: list[str]
    scores: list[float]
    reasons: list[str | None]
    sources: list[str]
    pipeline: str
    version: str


class Engine:
    """Serves one model bundle: immutable once built, so a hot swap replaces it whole.

    Args:
        version: the bundle's version.
        models: the bundle's fitted models by name (one shared vocabulary).
        items: the stored catalog.
        surfaces: pipeline config per surface name (`stages` lists); a surface named
            `default_surface` is added with `default_stages` unless configured.
        default_surface: the surface of requests that name none.
        ann_min_items: factor models over a catalog this large retrieve approximately.
        max_k: the longest list a request may ask for.
        exclusions: per kind (`purchased`, `dismissed`), a users x items matrix over the
            models' vocabularies of what each trained user bought or dismissed.
        prebuilt: retrieval indexes saved with the bundle, by model name; a factor model
            without one (or with one of another kind than `retrieval` asks) gets its index
            built here.
        retrieval: the index method of factor models (`auto`: `bounded` when it pays for
            the model's users, else `hnsw`; see `penchant.models.ann`).

    Raises:
        ConfigError: a surface's pipeline is invalid.
        InvalidInput: the models do not share one vocabulary, or there are none.
    """

    def __init__(
        self,
        version: str,
        models: Mapping[str, Recommender],
        items: Sequence[Item],
        surfaces: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *,
        default_surface: str = "default",
        ann_min_items: int = 50_000,
        max_k: int = 200,
        exclusions: Mapping[str, sp.csr_matrix] | None = None,
        prebuilt: Mapping[str, ItemIndex] | None = None,
        retrieval: str = "auto",
    ) -> None:
        if not models:
            raise InvalidInput("a model bundle needs at least one model", field="models")
        first = next(iter(models.values()))
        for name, model in models.items():
            if not np.array_equal(model.item_ids_, first.item_ids_):
                raise InvalidInput(f"model {name} has another item vocabulary", field="models")
        self.version = version
        self.max_k = max_k
        self.exclusions = dict(exclusions or {})
        self.default_surface = default_surface
        self._users = first
        # The user id lookup is built on first use: build it here, where the engine is loaded
        # (in the background during a swap), not in the first request it answers (0.1 s for
        # a million users).
        first.user_codes([])
        catalog = ServingCatalog.build(list(first.item_ids_), items)
        indexes: dict[str, ItemIndex] = {}
        if len(first.item_ids_) >= ann_min_items:
            for name, model in models.items():
                if not isinstance(model, FactorModel):
                    continue
                saved = (prebuilt or {}).get(name)
                fits = saved is not None and saved.n_items == len(model.item_ids_)
                if saved is not None and fits and retrieval in ("auto", saved.kind):
                    indexes[name] = saved  # built at training
                else:
                    indexes[name] = ItemIndex.build(
                        model.item_factors_,
                        min_items=ann_min_items,
                        method=retrieval,
                        queries=model.sample_users(),
                    )
        self.serving = Serving(
            version, dict(models), catalog, indexes, new_vectors=_new_vectors(models, catalog)
        )
        configured = dict(surfaces or {})
        names = list(models)
        self.pipelines: dict[str, Pipeline] = {
            name: build_pipeline(name, stages, names) for name, stages in configured.items()
        }
        if default_surface not in self.pipelines:
            self.pipelines[default_surface] = build_pipeline(
                default_surface,
                default_stages([n for n, m in models.items() if m.personalizes]),
                names,
                lenient=True,
            )

    def forget_user(self, user_id: str) -> int:
        """Erase a person's rows from the loaded models and exclusions; return how many models
        knew them. The engine is otherwise never changed: this is erasure, not an update."""
        code = int(self._users.user_codes([user_id])[0])
        if code < 0:
            return 0
        known = sum(model.forget_user(user_id) for model in self.serving.models.values())
        for kind, matrix in list(self.exclusions.items()):
            cleared = matrix.copy()
            cleared.data[cleared.indptr[code] : cleared.indptr[code + 1]] = 0
            cleared.eliminate_zeros()
            self.exclusions[kind] = cleared
        return known

    def with_items(self, items: Sequence[Item]) -> Engine:
        """A new engine on the same models, indexes and pipelines with a fresh catalog (an
        item changed: price, stock, a new item); the models are not reloaded."""
        first = next(iter(self.serving.models.values()))
        catalog = ServingCatalog.build(list(first.item_ids_), items)
        return self._with_catalog(catalog, _new_vectors(self.serving.models, catalog))

    def with_new_items(self, items: Sequence[Item]) -> Engine:
        """A new engine whose catalog also holds `items`, none of which it held before; only
        their rows are built (and embedded by content models).

        Raises:
            ValueError: an item is known already, or the catalog had no records.
        """
        catalog = self.catalog.extended(items)
        ids = [item.id for item in items]
        texts = catalog.new_texts[len(catalog.new_texts) - len(items) :]
        vectors = dict(self.serving.new_vectors)
        for name, model in self.serving.models.items():
            if isinstance(model, ContentModel):
                added = model.embed(ids, texts)
                old = vectors.get(name)
                vectors[name] = added if old is None or not len(old) else np.vstack([old, added])
        return self._with_catalog(catalog, vectors)

    def _with_catalog(
        self, catalog: ServingCatalog, new_vectors: dict[str, np.ndarray[Any, Any]]
    ) -> Engine:
        """A copy of this engine serving `catalog`, with content vectors of its new items."""
        engine = object.__new__(Engine)
        engine.__dict__.update(self.__dict__)
        engine.serving = Serving(
            self.version,
            self.serving.models,
            catalog,
            self.serving.indexes,
            dict(self.serving.cache),
            new_vectors,
        )
        return engine

    @property
    def catalog(self) -> ServingCatalog:
        """The serving catalog."""
        return self.serving.catalog

    def recommend(
        self,
        request: RankingRequest,
        user: Activity | None = None,
        session: Activity | None = None,
    ) -> Ranked:
        """Rank items for a person or a session.

        Args:
            request: who, how many, where, filters and rules.
            user: the person's activity since training (online state), if a user id is given.
            session: the session's activity, if a session id is given.

        Raises:
            InvalidInput: k above `max_k`, an unknown surface, neither user nor session.
        """
        query = self._query(request, user or _EMPTY, session or _EMPTY)
        pipeline = self.pipelines[query.surface]
        out = pipeline.run(query, self.serving)
        catalog = self.catalog
        return Ranked(
            item_ids=[str(catalog.ids[c]) for c in out.items],
            scores=[round(float(s), 6) for s in out.column(SCORE)],
            reasons=out.reasons.tolist(),
            sources=out.sources.tolist(),
            pipeline=pipeline.name,
            version=self.version,
        )

    def similar(self, item_id: str, k: int, surface: str | None = None) -> Ranked:
        """Items like one item: the surface's pipeline with that item as the page item.

        Raises:
            NotFound: the item is not in the catalog.
        """
        code = self.catalog.codes([item_id])[0]
        if code < 0 or not self.catalog.listed[code]:
            raise NotFound(f"no item {item_id!r}")
        request = RankingRequest(
            k=k,
            surface=surface,
            session_id=f"similar:{item_id}",
            context=RequestContext(page_item=item_id),
        )
        return self.recommend(request)

    def _query(self, request: RankingRequest, user: Activity, session: Activity) -> Query:
        if request.user_id is None and request.session_id is None:
            raise InvalidInput("give user_id or session_id", field="user_id")
        if request.k > self.max_k:
            raise InvalidInput(f"k: at most {self.max_k}", field="k")
        surface = request.surface or self.default_surface
        pipeline = self.pipelines.get(surface)
        if pipeline is None:
            raise InvalidInput(
                f"unknown surface {surface!r}; configured: {', '.join(sorted(self.pipelines))}",
                field="surface",
            )
        catalog = self.catalog
        now = request.now()
        user_code = -1
        trained: CodeArray = np.zeros(0, dtype=np.int64)
        if request.user_id is not None and request.profiling:
            user_code = int(self._users.user_codes([request.user_id])[0])
            if user_code >= 0:
                trained = _row(self._users.history_, user_code)
        session_items = _codes(catalog, session.recent)
        online = np.concatenate([_codes(catalog, user.recent), session_items])
        history = _unique_first(np.concatenate([online, trained])) if len(online) else trained
        online = online[online < catalog.n_model]
        fresh = user_code >= 0 and bool(len(online)) and bool(np.setdiff1d(online, trained).size)
        purchased = _codes(catalog, user.purchased + session.purchased)
        dismissed = _codes(catalog, user.dismissed + session.dismissed)
        if user_code >= 0:
            purchased = np.concatenate([purchased, self._trained(user_code, "purchased")])
            dismissed = np.concatenate([dismissed, self._trained(user_code, "dismissed")])
        filters = pipeline.filters.merged(request.filters)
        eligible = catalog.allowed(filters, now)
        self._exclude(eligible, filters, request, history, purchased, dismissed)
        who = request.user_id or f"session:{request.session_id}"
        return Query(
            request=request,
            surface=surface,
            now=now,
            user_code=user_code,
            history=history,
            session=session_items,
            purchased=purchased,
            dismissed=dismissed,
            filters=filters,
            rules=pipeline.rules + request.rules,
            eligible=eligible,
            fresh=fresh,
            seed=person_seed(who, surface, micros(now) // 3_600_000_000),
        )

    def _trained(self, user_code: int, kind: str) -> CodeArray:
        """What a trained user bought or dismissed before training (catalog codes)."""
        matrix = self.exclusions.get(kind)
        if matrix is None or user_code < 0:
            return np.zeros(0, dtype=np.int64)
        return _row(matrix, user_code)

    def _exclude(
        self,
        eligible: np.ndarray[Any, Any],
        filters: FilterSpec,
        request: RankingRequest,
        history: CodeArray,
        purchased: CodeArray,
        dismissed: CodeArray,
    ) -> None:
        catalog = self.catalog
        if filters.exclude_seen:
            eligible[history] = False
        if filters.exclude_purchased:
            eligible[purchased] = False
        if filters.exclude_dismissed:
            eligible[dismissed] = False
        dropped = _codes(catalog, request.exclude)
        eligible[dropped] = False
        page = request.context.page_item
        if page is not None:
            eligible[_codes(catalog, [page])] = False


def _codes(catalog: ServingCatalog, ids: Sequence[str]) -> CodeArray:
    """Catalog codes of ids, in order, unknown ids left out."""
    if not ids:
        return np.zeros(0, dtype=np.int64)
    codes = catalog.codes(ids)
    return codes[codes >= 0]


def _row(matrix: sp.csr_matrix, row: int) -> CodeArray:
    """The column codes of one CSR row (scipy's row indexing costs far more)."""
    return np.asarray(matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]], np.int64)


def _unique_first(codes: CodeArray) -> CodeArray:
    """Codes without repeats, each at its first position."""
    _, first = np.unique(codes, return_index=True)
    return codes[np.sort(first)]


def _new_vectors(
    models: Mapping[str, Recommender], catalog: ServingCatalog
) -> dict[str, np.ndarray[Any, np.dtype[np.float32]]]:
    """Each content model's vectors of the catalog items it was not trained with."""
    new_ids = [str(i) for i in catalog.ids[catalog.n_model :]]
    return {
        name: model.embed(new_ids, catalog.new_texts)
        for name, model in models.items()
        if isinstance(model, ContentModel)
    }
