"""Every model passes the shared `RecommenderContract`."""

from __future__ import annotations

from typing import Any, ClassVar

from penchant.models import BPR, EASE, Blend, ImplicitALS, ItemKNN, Popular, Recommender
from penchant.testing import RecommenderContract


class TestPopular(RecommenderContract):
    learns_preferences = False
    changed_params: ClassVar[list[dict[str, Any]]] = [{"half_life_days": 0.0001}]

    def make_model(self) -> Recommender:
        return Popular()


class TestItemKNN(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [
        {"k": 2},
        {"shrinkage": 10.0},
        {"min_similarity": 0.9},
        {"neighbourhood": "history"},
    ]

    def make_model(self) -> Recommender:
        return ItemKNN(k=5)


class TestImplicitALS(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [
        {"factors": 4},
        {"regularization": 5.0},
        {"alpha": 10.0},
        {"epochs": 2},
        {"rng": 7},
    ]

    def make_model(self) -> Recommender:
        return ImplicitALS(factors=8, epochs=10, threads=1)


class TestBPR(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [
        {"factors": 4},
        {"learning_rate": 0.1},
        {"regularization": 0.5},
        {"epochs": 5},
        {"rng": 7},
    ]

    def make_model(self) -> Recommender:
        return BPR(factors=8, learning_rate=0.05, epochs=200, threads=1)


class TestEASE(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [{"regularization": 1.0}]

    def make_model(self) -> Recommender:
        return EASE(regularization=10.0)


class TestBlend(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [{"weights": [1.0, 0.0]}]

    def make_model(self) -> Recommender:
        return Blend([ItemKNN(k=20), Popular()], weights=[1.0, 0.5])
