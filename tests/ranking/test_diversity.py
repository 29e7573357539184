"""Diversity against a plain re-implementation of its greedy rule, on one- and multi-label
catalogs (the two code paths)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from penchant.ranking.catalog import ServingCatalog
from penchant.ranking.query import Query, Serving
from penchant.ranking.request import FilterSpec, RankingRequest
from penchant.ranking.rerank import Diversity
from penchant.ranking.stages import SCORE
from penchant.schema import Item
from penchant.types import Candidates


def greedy(scores: list[float], labels: list[set[str]], k: int, strength: float) -> list[int]:
    """Maximal marginal relevance as the docstring states it, one row at a time."""
    low, high = min(scores), max(scores)
    relevance = [(s - low) / ((high - low) or 1.0) for s in scores]
    picked: list[int] = []
    for step in range(min(k, len(scores))):
        shown = [label for p in picked for label in labels[p]]
        value = {
            r: relevance[r] - strength * sum(shown.count(x) for x in labels[r]) / max(step, 1)
            for r in range(len(scores))
            if r not in picked
        }
        picked.append(max(value, key=lambda r: (value[r], -r)))
    return picked + [r for r in range(len(scores)) if r not in picked]


def run(items: list[Item], scores: list[float], k: int, strength: float) -> list[int]:
    ids = [item.id for item in items]
    catalog = ServingCatalog.build(ids, items)
    order = np.argsort(-np.array(scores), kind="stable")
    table = Candidates(order.astype(np.int64), {SCORE: np.array(scores, np.float32)[order]})
    query = Query(
        request=RankingRequest(user_id="u", k=k),
        surface="default",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        user_code=-1,
        history=np.zeros(0, np.int64),
        session=np.zeros(0, np.int64),
        purchased=np.zeros(0, np.int64),
        dismissed=np.zeros(0, np.int64),
        filters=FilterSpec(),
        rules=[],
        eligible=np.ones(len(items), bool),
        seed=0,
    )
    out = Diversity(strength=strength)(table, query, Serving("v", {}, catalog))
    return [int(c) for c in out.items]


@pytest.mark.parametrize("labels_per_item", [1, 3])
@pytest.mark.parametrize("strength", [0.3, 2.0])
def test_diversity_follows_its_greedy_rule(labels_per_item: int, strength: float) -> None:
    gen = np.random.default_rng(labels_per_item)
    n, k = 40, 12
    labels = [{f"c{c}" for c in gen.choice(6, labels_per_item, replace=False)} for _ in range(n)]
    items = [Item(id=f"i{i}", categories=sorted(labels[i])) for i in range(n)]
    scores = gen.random(n).round(3).tolist()
    order = np.argsort(-np.array(scores), kind="stable").tolist()
    want = greedy([scores[i] for i in order], [labels[i] for i in order], k, strength)
    got = run(items, scores, k, strength)
    assert got == [order[r] for r in want]


def test_one_label_per_item_takes_the_comparison_path() -> None:
    items: list[Any] = [Item(id=f"i{i}", categories=[f"c{i % 3}"]) for i in range(9)]
    catalog = ServingCatalog.build([i.id for i in items], items)
    assert catalog.only_label("category") is not None
    items[0] = Item(id="i0", categories=["c0", "c1"])
    assert ServingCatalog.build([i.id for i in items], items).only_label("category") is None


@pytest.mark.parametrize("seed", range(30))
def test_one_label_picks_equal_the_general_rule(seed: int) -> None:
    """The one-label path against the general one on one-hot labels: ties in relevance,
    rows without a label, few and many labels, weak and strong penalties."""
    from penchant.ranking.rerank import _greedy_one_label, mmr

    gen = np.random.default_rng(seed)
    n = int(gen.integers(2, 120))
    n_labels = int(gen.integers(1, 12))
    labels = gen.integers(-1, n_labels, n)  # -1: no label
    relevance = gen.integers(0, 8, n) / 7.0  # coarse: many ties
    onehot = np.zeros((n, n_labels))
    onehot[np.flatnonzero(labels >= 0), labels[labels >= 0]] = 1.0
    strength = float(gen.choice([0.05, 0.2, 1.0, 5.0]))
    k = int(gen.integers(1, n + 1))
    assert _greedy_one_label(relevance, labels, k, strength) == mmr(relevance, onehot, k, strength)
