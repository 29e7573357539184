"""Reusable contract suites for plug-in authors: subclass one and inherit every test."""

from penchant.testing.policy_contract import PolicyContract
from penchant.testing.recommender_contract import RecommenderContract
from penchant.testing.reranker_contract import RerankerContract
from penchant.testing.state_contract import StateContract
from penchant.testing.store_contract import StoreContract

__all__ = [
    "PolicyContract",
    "RecommenderContract",
    "RerankerContract",
    "StateContract",
    "StoreContract",
]
