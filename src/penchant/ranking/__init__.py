"""The request pipeline: sources → score → filters and rules → re-rank → explanations."""

from penchant.ranking.catalog import ServingCatalog
from penchant.ranking.engine import Engine, Ranked
from penchant.ranking.pipeline import DEFAULT_STAGES, Pipeline, build_pipeline
from penchant.ranking.request import FilterSpec, Match, RankingRequest, RequestContext, Rule
from penchant.ranking.state import OnlineState

__all__ = [
    "DEFAULT_STAGES",
    "Engine",
    "FilterSpec",
    "Match",
    "OnlineState",
    "Pipeline",
    "Ranked",
    "RankingRequest",
    "RequestContext",
    "Rule",
    "ServingCatalog",
    "build_pipeline",
]
