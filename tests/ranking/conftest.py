"""A small served world with known answers: two taste groups of users and items."""

from __future__ import annotations

import pytest
from ranking_world import catalog_items

from penchant.models import create_model
from penchant.models.base import Recommender
from penchant.ranking import Engine
from penchant.testing.synthetic import planted_blocks


@pytest.fixture(scope="package")
def models() -> dict[str, Recommender]:
    data = planted_blocks(n_users=60, n_items=40, blocks=2, density=0.5, rng=0)
    return {
        "popular": create_model("popular").fit(data),
        "itemknn": create_model("itemknn", k=20).fit(data),
        "ials": create_model("ials", factors=8, epochs=10, rng=0).fit(data),
    }


@pytest.fixture(scope="package")
def engine(models: dict[str, Recommender]) -> Engine:
    return Engine("v1", models, catalog_items())
