"""A pipeline: named, configured stages over one `Candidates` table; a surface is a config."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from penchant.errors import ConfigError
from penchant.ranking.explain import Explain
from penchant.ranking.fair_stages import Calibration, FairExposure, LongTail, PopularityPenalty
from penchant.ranking.query import Query, Serving
from penchant.ranking.request import FilterSpec, Rule
from penchant.ranking.rerank import Diversity, Exploration
from penchant.ranking.sources import (
    ContentSource,
    FollowedProviderSource,
    ModelSource,
    RankerSource,
    SequenceSource,
    SimilarSource,
    TrendingSource,
)
from penchant.ranking.stages import Filter, Rules, Score, place_pins
from penchant.types import Candidates


class Stage(Protocol):
    """One step of a pipeline."""

    def __call__(self, candidates: Candidates, query: Query, serving: Serving) -> Candidates:
        """Take the table and return the next one."""
        ...


def _session(**options: Any) -> ModelSource:
    return ModelSource(**options, history="session")


#: Stage kinds a surface can list, by the `stage` key of its config tables.
STAGES: dict[str, Callable[..., Stage]] = {
    "model": ModelSource,
    "session": _session,
    "similar": SimilarSource,
    "trending": TrendingSource,
    "followed": FollowedProviderSource,
    "content": ContentSource,
    "sequence": SequenceSource,
    "ranker": RankerSource,
    "score": Score,
    "filter": Filter,
    "rules": Rules,
    "diversity": Diversity,
    "calibration": Calibration,
    "long_tail": LongTail,
    "popularity_penalty": PopularityPenalty,
    "fair_exposure": FairExposure,
    "exploration": Exploration,
    "explain": Explain,
}
_SOURCES = (
    ModelSource,
    SimilarSource,
    TrendingSource,
    FollowedProviderSource,
    ContentSource,
    SequenceSource,
    RankerSource,
)

#: The sources a surface nobody configured starts with when the bundle has their model.
OPTIONAL_SOURCES: list[dict[str, Any]] = [
    {"stage": "ranker", "model": "hybrid", "n": 100, "weight": 2.0},
    {"stage": "sequence", "model": "sasrec", "n": 100, "weight": 1.0},
    {"stage": "content", "model": "content", "n": 100, "weight": 0.5},
    {"stage": "model", "model": "taste", "n": 100, "weight": 3.0},
]
#: The stages of a surface nobody configured, for a bundle of popular, itemknn and ials
#: (`default_stages` adds `OPTIONAL_SOURCES` of the bundle's other models).
DEFAULT_STAGES: list[dict[str, Any]] = [
    {"stage": "model", "model": "ials", "n": 100, "weight": 1.0},
    {"stage": "model", "model": "itemknn", "n": 100, "weight": 0.6},
    {"stage": "session", "model": "itemknn", "n": 100, "weight": 1.2},
    {"stage": "similar", "model": "itemknn", "n": 100, "weight": 0.8},
    {"stage": "followed", "n": 50, "weight": 1.0},
    {"stage": "trending", "model": "popular", "n": 100, "weight": 0.15},
    {"stage": "score"},
    {"stage": "filter"},
    {"stage": "rules"},
    {"stage": "diversity", "by": "category", "strength": 0.2},
    {"stage": "explain"},
]


@dataclass
class Pipeline:
    """Named stages run in order; then pins are placed, the list cut to k, and explained.

    Attributes:
        name: the surface it serves.
        stages: (name, stage) pairs; explanation, when configured, runs on the final list.
        filters: the surface's own filters (requests may narrow them).
        rules: the surface's own business rules (a request's are applied after them).
    """

    name: str
    stages: list[tuple[str, Stage]]
    filters: FilterSpec = field(default_factory=FilterSpec)
    rules: list[Rule] = field(default_factory=list)
    explain: Explain | None = None

    def run(self, query: Query, serving: Serving) -> Candidates:
        """The ranked, explained list for one request (at most k rows)."""
        candidates = Candidates.empty()
        for _, stage in self.stages:
            candidates = stage(candidates, query, serving)
        shown = place_pins(candidates, query.k)
        return self.explain(shown, query, serving) if self.explain else shown


def default_stages(models: Sequence[str]) -> list[dict[str, Any]]:
    """The stages of a surface nobody configured, for a bundle of these models (the engine
    names only those that personalize: a taste model without item categories proposes
    nothing of its own)."""
    return [s for s in OPTIONAL_SOURCES if s["model"] in models] + DEFAULT_STAGES


def build_pipeline(
    name: str,
    stages: Sequence[Mapping[str, Any]],
    models: Sequence[str],
    *,
    lenient: bool = False,
) -> Pipeline:
    """A pipeline from its config tables (`stage` = kind, the rest = that stage's options).

    Sources that name a model the bundle lacks are left out when `lenient` (the built-in
    default surface), and are an error otherwise (a configured surface).

    Raises:
        ConfigError: an unknown stage kind, an unknown or invalid option, or a missing model;
            `field` names the offending table (`surfaces.NAME.stages[I]`).
    """
    built: list[tuple[str, Stage]] = []
    weights: dict[str, float] = {}
    filters, rules = FilterSpec(), []
    explain: Explain | None = None
    for i, table in enumerate(stages):
        where = f"surfaces.{name}.stages[{i}]"
        options = {k: v for k, v in table.items() if k != "stage"}
        kind = table.get("stage")
        if kind not in STAGES:
            raise ConfigError(
                f"{where}: unknown stage {kind!r}; expected one of {', '.join(STAGES)}",
                field=where,
            )
        try:
            if kind == "filter":
                filters = FilterSpec.model_validate(options)
                options = {}
            elif kind == "rules":
                rules = [Rule.model_validate(r) for r in options.pop("rules", [])]
            stage = STAGES[kind](**options)
        except (TypeError, ValidationError) as exc:
            raise ConfigError(f"{where}: {_first_line(exc)}", field=where) from exc
        model = getattr(stage, "model", None)
        if model is not None and model not in models:
            if lenient:
                continue
            raise ConfigError(
                f"{where}: model {model!r} is not in the trained bundle ({', '.join(models)})",
                field=where,
            )
        if isinstance(stage, Explain):
            explain = stage
            continue
        if isinstance(stage, _SOURCES):
            weights[stage.name] = stage.weight
        if isinstance(stage, ContentSource):
            weights[f"{stage.name}_new"] = stage.new_weight
        built.append((str(kind), stage))
    for _, stage in built:
        if isinstance(stage, Score):
            stage.weights = {**weights, **stage.weights}
    if explain is not None:
        personal = ModelSource | SimilarSource | ContentSource | SequenceSource | RankerSource
        explain.source_models = {s.name: s.model for _, s in built if isinstance(s, personal)}
        explain.user_sources = {
            s.name
            for _, s in built
            if isinstance(s, ContentSource | RankerSource)
            or (isinstance(s, ModelSource | SequenceSource) and s.history == "user")
        }
        explain.session_sources = {
            s.name
            for _, s in built
            if isinstance(s, ModelSource | SequenceSource) and s.history == "session"
        }
        for _, s in built:
            if isinstance(s, ContentSource):
                explain.source_models[f"{s.name}_new"] = s.model
                explain.user_sources.add(f"{s.name}_new")
        if not explain.similarity and "itemknn" in models:
            explain.similarity = "itemknn"
    if not any(isinstance(s, Score) for _, s in built):
        raise ConfigError(
            f"surfaces.{name}: a pipeline needs a score stage", field=f"surfaces.{name}"
        )
    return Pipeline(name, built, filters, rules, explain)


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc).splitlines()[0]
