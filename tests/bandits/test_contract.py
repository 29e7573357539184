"""Every bandit policy passes the shared `PolicyContract`."""

from __future__ import annotations

from typing import Any, ClassVar

from penchant.bandits import UCB1, BetaThompson, EpsilonGreedy, LinearThompson, LinUCB, Policy
from penchant.testing import PolicyContract


class TestEpsilonGreedy(PolicyContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [{"epsilon": 0.5}]

    def make_policy(self) -> Policy:
        return EpsilonGreedy(epsilon=0.1)


class TestUCB1(PolicyContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [{"c": 0.05}]

    def make_policy(self) -> Policy:
        return UCB1()


class TestBetaThompson(PolicyContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [
        {"prior_alpha": 50.0},
        {"prior_beta": 50.0},
        {"n_draws": 20},
    ]

    def make_policy(self) -> Policy:
        return BetaThompson()


class TestLinUCB(PolicyContract):
    contextual = True
    changed_params: ClassVar[list[dict[str, Any]]] = [{"alpha": 5.0}, {"regularization": 100.0}]

    def make_policy(self) -> Policy:
        return LinUCB()


class TestLinearThompson(PolicyContract):
    contextual = True
    changed_params: ClassVar[list[dict[str, Any]]] = [
        {"v": 0.05},
        {"regularization": 100.0},
        {"n_draws": 20},
    ]

    def make_policy(self) -> Policy:
        return LinearThompson()
