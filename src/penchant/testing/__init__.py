"""Reusable contract suites for plug-in authors: subclass one and inherit every test."""

from penchant.testing.recommender_contract import RecommenderContract
from penchant.testing.state_contract import StateContract
from penchant.testing.store_contract import StoreContract

__all__ = ["RecommenderContract", "StateContract", "StoreContract"]
