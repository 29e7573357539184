"""`RerankerContract`: what every re-ranking stage of a pipeline must keep.

Subclass it in a test module and implement `make_stage(strength)` (the stage at a given
strength); every test below then runs against it, on a small catalog of 24 items in four
categories and three providers, with a popularity model and a person whose history mixes
several categories. A re-ranker may reorder the rows it is free to move, and only those:

- it returns every row exactly once (a permutation: nothing lost, nothing doubled);
- at strength 0 it changes nothing;
- pinned rows stay at the end, for `place_pins`, and buried rows stay after every free row;
- the same request gives the same order (it is a function of its input);
- at full strength it moves something in this catalog (it is not inert).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any

import numpy as np

from penchant.data import Dataset
from penchant.models import create_model
from penchant.ranking.catalog import ServingCatalog
from penchant.ranking.pipeline import Stage
from penchant.ranking.query import Query, Serving
from penchant.ranking.request import FilterSpec, RankingRequest
from penchant.ranking.stages import BURIED, PIN, SCORE
from penchant.schema import Item
from penchant.types import Candidates

N_ITEMS = 24
#: Item i: category c{(i // 3) % 4} (runs of three), provider p{i // 8}; the best scored
#: items are the first, so the head of a list repeats categories and providers.
ITEMS = [
    Item(id=f"i{i}", categories=[f"c{(i // 3) % 4}"], provider=f"p{i // 8}") for i in range(N_ITEMS)
]


def contract_serving() -> Serving:
    """The catalog, served with a popularity model in which the first items are the most
    popular (item i taken by 24 - i of 24 people)."""
    users = [u for i in range(N_ITEMS) for u in range(N_ITEMS - i)]
    items = [i for i in range(N_ITEMS) for _ in range(N_ITEMS - i)]
    data = Dataset.from_arrays(
        [f"u{u}" for u in range(N_ITEMS)],
        [item.id for item in ITEMS],
        users=np.array(users),
        items=np.array(items),
        first_ts=np.arange(len(users), dtype=np.int64),
    )
    popular = create_model("popular").fit(data)
    catalog = ServingCatalog.build([item.id for item in ITEMS], ITEMS)
    return Serving("contract", {"popular": popular}, catalog)


def query_for(history: Any, k: int, n_items: int, **request: Any) -> Query:
    """A resolved request for k of `n_items` items (all eligible) from a person with this
    history (item codes); `request`: further `RankingRequest` fields (`rerank`...)."""
    return Query(
        request=RankingRequest(user_id="u", k=k, **request),
        surface="contract",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        user_code=-1,
        history=np.array(history, np.int64),
        session=np.zeros(0, np.int64),
        purchased=np.zeros(0, np.int64),
        dismissed=np.zeros(0, np.int64),
        filters=FilterSpec(),
        rules=[],
        eligible=np.ones(n_items, bool),
        seed=0,
    )


def contract_query(k: int = 8, history: tuple[int, ...] = (1, 5, 9, 2, 20)) -> Query:
    """A request for k items from a person who took items of c0, c1, c2, c3 and the tail."""
    return query_for(history, k, N_ITEMS)


def candidates(pinned: tuple[int, ...] = (), buried: tuple[int, ...] = ()) -> Candidates:
    """Every item, scored from 1 down in code order; some rows pinned or buried."""
    pins = np.zeros(N_ITEMS, np.float32)
    pins[list(pinned)] = 1.0
    bury = np.zeros(N_ITEMS, np.float32)
    bury[list(buried)] = 1.0
    columns = {SCORE: np.linspace(1.0, 0.05, N_ITEMS).astype(np.float32), PIN: pins, BURIED: bury}
    return Candidates(np.arange(N_ITEMS, dtype=np.int64), columns)


class RerankerContract(ABC):
    """The shared suite; see the module docstring."""

    @abstractmethod
    def make_stage(self, strength: float) -> Stage:
        """The stage under test at this strength."""

    def run(self, strength: float, table: Candidates | None = None) -> list[int]:
        table = table if table is not None else candidates()
        out = self.make_stage(strength)(table, contract_query(), contract_serving())
        return [int(i) for i in out.items]

    def test_every_row_comes_back_once(self) -> None:
        for strength in (0.3, 1.0):
            assert sorted(self.run(strength)) == list(range(N_ITEMS))

    def test_strength_zero_changes_nothing(self) -> None:
        assert self.run(0.0) == list(range(N_ITEMS))

    def test_pinned_rows_stay_last_and_buried_rows_after_the_free_ones(self) -> None:
        table = candidates(pinned=(3,), buried=(0, 1))
        order = self.run(1.0, table)
        assert order[-1] == 3
        assert order[-3:-1] == [0, 1]

    def test_the_same_request_gives_the_same_order(self) -> None:
        assert self.run(0.7) == self.run(0.7)

    def test_full_strength_moves_something(self) -> None:
        assert self.run(1.0)[:8] != list(range(8))

    def test_the_stage_leaves_the_candidates_columns_alone(self) -> None:
        table = candidates()
        scores: dict[str, Any] = {name: col.copy() for name, col in table.columns.items()}
        out = self.make_stage(1.0)(table, contract_query(), contract_serving())
        for name, col in scores.items():
            np.testing.assert_array_equal(table.columns[name], col)
            np.testing.assert_array_equal(out.columns[name], col[out.items])
