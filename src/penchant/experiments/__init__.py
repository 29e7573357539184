"""Experiments from logs: off-policy estimators, their intervals, and the logs they read."""

from penchant.experiments.intervals import Estimate
from penchant.experiments.ope import ESTIMATORS, dm, dr, estimate_all, ips, snips
from penchant.experiments.reward_model import LinearRewardModel, cross_fit_rewards

__all__ = [
    "ESTIMATORS",
    "Estimate",
    "LinearRewardModel",
    "cross_fit_rewards",
    "dm",
    "dr",
    "estimate_all",
    "ips",
    "snips",
]
