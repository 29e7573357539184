"""Experiments: assignment, A/B test statistics, sequential tests, interleaving, and
off-policy estimators from logs."""

from penchant.experiments.abtest import (
    Comparison,
    CupedComparison,
    bootstrap,
    cuped,
    ratio_metric,
    two_proportions,
    welch,
)
from penchant.experiments.assignment import Allocation, Assignment, Holdout, assign, unit_hash
from penchant.experiments.interleaving import (
    Interleaved,
    InterleavingResult,
    credit,
    preference,
    team_draft,
)
from penchant.experiments.intervals import Estimate
from penchant.experiments.ope import ESTIMATORS, dm, dr, estimate_all, ips, snips
from penchant.experiments.reward_model import LinearRewardModel, cross_fit_rewards
from penchant.experiments.sequential import ArmTotals, SequentialTest, msprt
from penchant.experiments.validity import holm, sample_ratio_mismatch, srm_suspected

__all__ = [
    "ESTIMATORS",
    "Allocation",
    "ArmTotals",
    "Assignment",
    "Comparison",
    "CupedComparison",
    "Estimate",
    "Holdout",
    "Interleaved",
    "InterleavingResult",
    "LinearRewardModel",
    "SequentialTest",
    "assign",
    "bootstrap",
    "credit",
    "cross_fit_rewards",
    "cuped",
    "dm",
    "dr",
    "estimate_all",
    "holm",
    "ips",
    "msprt",
    "preference",
    "ratio_metric",
    "sample_ratio_mismatch",
    "snips",
    "srm_suspected",
    "team_draft",
    "two_proportions",
    "unit_hash",
    "welch",
]
