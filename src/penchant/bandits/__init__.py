"""Bandit policies over additive per-arm statistics: pure maths, no I/O.

Every policy keeps, per arm, a float64 vector that only grows by addition (see `Policy`),
so workers can share it by adding deltas and rebuild it from the event log as a sum.
"""

from penchant.bandits.base import Policy, Selection
from penchant.bandits.codec import decode_stats, encode_stats
from penchant.bandits.config import POLICIES, make_policy, policy_config
from penchant.bandits.linear import LinearThompson, LinUCB
from penchant.bandits.simple import UCB1, BetaThompson, EpsilonGreedy

__all__ = [
    "POLICIES",
    "UCB1",
    "BetaThompson",
    "EpsilonGreedy",
    "LinUCB",
    "LinearThompson",
    "Policy",
    "Selection",
    "decode_stats",
    "encode_stats",
    "make_policy",
    "policy_config",
]
