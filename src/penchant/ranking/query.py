"""What every stage reads: the served models and catalog, and one request's resolved state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from penchant.models.ann import ItemIndex
from penchant.models.base import Recommender
from penchant.ranking.catalog import BoolArray, ServingCatalog
from penchant.ranking.request import FilterSpec, RankingRequest, Rule

CodeArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass
class Serving:
    """One model version and the catalog it serves: fixed between hot swaps.

    Attributes:
        version: the bundle's version.
        models: the bundle's models by name; they share one item and user vocabulary.
        catalog: the serving catalog (model codes first).
        indexes: approximate retrieval indexes of factor models, by model name.
        new_vectors: per content model, the vectors of the catalog's items after the models'
            own (codes `n_model ..`), so that an item upserted after training is ranked too.
    """

    version: str
    models: Mapping[str, Recommender]
    catalog: ServingCatalog
    indexes: Mapping[str, ItemIndex] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    new_vectors: Mapping[str, np.ndarray[Any, np.dtype[np.float32]]] = field(default_factory=dict)


@dataclass
class Query:
    """One request, resolved: who it is for, what they did, and which items may be shown.

    Attributes:
        request: the request as sent.
        surface: the surface (pipeline) name.
        now: the request's time.
        user_code: the models' code of the user, or -1 (new user or session only).
        history: catalog codes of what the person consumed, newest known first.
        session: catalog codes of the session's items, newest first.
        purchased, dismissed: catalog codes.
        filters: the surface's filters narrowed by the request's.
        rules: the surface's rules, then the request's.
        eligible: per catalog code, whether it may be shown (filters and exclusions).
        seed: the per-person seed of random stages (stable within the hour).
        fresh: whether the person consumed items since training that their learned state
            lacks (factor models then fold them in from the whole history).
        notes: what sources learned that explanations need (e.g. the trending category).
    """

    request: RankingRequest
    surface: str
    now: datetime
    user_code: int
    history: CodeArray
    session: CodeArray
    purchased: CodeArray
    dismissed: CodeArray
    filters: FilterSpec
    rules: list[Rule]
    eligible: BoolArray
    seed: int
    fresh: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """The list length asked for."""
        return self.request.k
