"""Reusable contract suites for plug-in authors: subclass one and inherit every test."""

from penchant.testing.state_contract import StateContract
from penchant.testing.store_contract import StoreContract

__all__ = ["StateContract", "StoreContract"]
