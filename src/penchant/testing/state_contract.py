"""`StateContract`: the behaviour every online-state backend must show."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest

from penchant.errors import StoreError
from penchant.store.state import AddFloats, SetValue, StateStore


class StateContract:
    """Tests every `StateStore` must pass. Needs a `state` fixture."""

    @pytest.fixture
    def tenant(self) -> str:
        return f"t{uuid.uuid4().hex[:10]}"

    def test_get_set_delete(self, state: StateStore, tenant: str) -> None:
        assert state.get(tenant, "k") is None
        state.set(tenant, "k", b"v")
        assert state.get(tenant, "k") == b"v"
        assert state.delete(tenant, "k", "missing") == 1
        assert state.get(tenant, "k") is None

    def test_values_expire(self, state: StateStore, tenant: str) -> None:
        state.set(tenant, "k", b"v", ttl_s=0.05)
        assert state.get(tenant, "k") == b"v"
        time.sleep(0.15)
        assert state.get(tenant, "k") is None

    def test_counters(self, state: StateStore, tenant: str) -> None:
        assert state.incr(tenant, "c") == 1
        assert state.incr(tenant, "c", 5) == 6
        assert state.get(tenant, "c") == b"6"

    def test_recent_lists_keep_the_newest(self, state: StateStore, tenant: str) -> None:
        for n in range(10):
            state.push_recent(tenant, "r", f"i{n}", maxlen=4)
        assert state.recent(tenant, "r", 10) == ["i9", "i8", "i7", "i6"]
        assert state.recent(tenant, "r", 2) == ["i9", "i8"]
        assert state.recent(tenant, "none", 3) == []

    def test_recent_lists_expire_after_their_last_push(
        self, state: StateStore, tenant: str
    ) -> None:
        state.push_recent(tenant, "s", "a", maxlen=4, ttl_s=0.3)
        time.sleep(0.2)
        state.push_recent(tenant, "s", "b", maxlen=4, ttl_s=0.3)  # renews the whole list
        time.sleep(0.2)
        assert state.recent(tenant, "s", 4) == ["b", "a"]
        time.sleep(0.3)
        assert state.recent(tenant, "s", 4) == []

    def test_tenants_are_isolated_and_prefix_delete_is_exact(
        self, state: StateStore, tenant: str
    ) -> None:
        other = tenant + "x"
        state.set(tenant, "user:u1:a", b"1")
        state.set(tenant, "user:u1:b", b"1")
        state.set(tenant, "user:u10", b"1")
        state.set(tenant, "user:u*", b"1")
        state.set(other, "user:u1:a", b"1")
        assert state.get(other, "user:u1:b") is None
        assert state.delete_prefix(tenant, "user:u1:") == 2
        assert state.get(tenant, "user:u10") == b"1"
        assert state.get(other, "user:u1:a") == b"1"
        assert state.delete_prefix(tenant, "user:u*") == 1
        assert state.get(tenant, "user:u10") == b"1"
        state.delete_prefix(tenant, "")
        state.delete_prefix(other, "")

    def test_get_many_answers_in_order_with_none_for_absent(
        self, state: StateStore, tenant: str
    ) -> None:
        state.set(tenant, "a", b"1")
        state.set(tenant, "c", b"3")
        assert state.get_many(tenant, ["c", "b", "a"]) == [b"3", None, b"1"]
        assert state.get_many(tenant, []) == []

    def test_add_floats_sums_exactly_as_float64(self, state: StateStore, tenant: str) -> None:
        rng = np.random.default_rng(7)
        deltas = rng.normal(size=(20, 6)) * 10.0 ** rng.integers(-8, 8, size=(20, 1))
        for row in deltas:
            state.add_floats(tenant, "v", row)
        expected = np.zeros(6)
        for row in deltas:  # the same order of additions, so the same rounding
            expected = expected + row
        stored = state.get(tenant, "v")
        assert stored is not None
        assert np.array_equal(np.frombuffer(stored, dtype="<f8"), expected)

    def test_add_floats_from_many_threads_loses_nothing(
        self, state: StateStore, tenant: str
    ) -> None:
        def add(n: int) -> None:
            for _ in range(n):
                state.add_floats(tenant, "shared", np.array([1.0, 0.5, 2.0]))

        threads = [threading.Thread(target=add, args=(50,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = state.get(tenant, "shared")
        assert stored is not None
        assert np.frombuffer(stored, dtype="<f8").tolist() == [400.0, 200.0, 800.0]

    def test_add_floats_refuses_a_vector_of_another_length(
        self, state: StateStore, tenant: str
    ) -> None:
        state.add_floats(tenant, "v", np.ones(3))
        with pytest.raises(StoreError, match="another length"):
            state.add_floats(tenant, "v", np.ones(4))
        stored = state.get(tenant, "v")
        assert stored is not None and np.frombuffer(stored, dtype="<f8").tolist() == [1, 1, 1]

    def test_add_floats_of_sparse_vectors_keeps_the_whole_length(
        self, state: StateStore, tenant: str
    ) -> None:
        # a new vector whose last cells are zero is still stored whole, and zero cells of a
        # delta leave the stored cells as they were
        state.add_floats(tenant, "v", np.array([0.0, 2.5, 0.0, 0.0]))
        state.add_floats(tenant, "v", np.array([-1.0, 0.0, 0.0, np.inf]))
        state.add_floats(tenant, "v", np.zeros(4))
        stored = state.get(tenant, "v")
        assert stored is not None
        assert np.frombuffer(stored, dtype="<f8").tolist() == [-1.0, 2.5, 0.0, np.inf]
        with pytest.raises(StoreError, match="another length"):
            state.add_floats(tenant, "v", np.zeros(5))

    def test_write_many_applies_every_write_in_order(self, state: StateStore, tenant: str) -> None:
        state.write_many(
            tenant,
            [
                AddFloats("v", np.array([1.0, 0.0, 0.25])),
                SetValue("k", b"first"),
                AddFloats("v", np.array([0.5, 0.0, 0.25])),
                SetValue("k", b"second"),
                SetValue("brief", b"x", ttl_s=0.05),
            ],
        )
        stored = state.get(tenant, "v")
        assert stored is not None
        assert np.frombuffer(stored, dtype="<f8").tolist() == [1.5, 0.0, 0.5]
        assert state.get_many(tenant, ["k", "brief"]) == [b"second", b"x"]
        time.sleep(0.15)
        assert state.get(tenant, "brief") is None
        state.write_many(tenant, [])

    def test_write_many_reports_a_refused_addition_after_applying_the_rest(
        self, state: StateStore, tenant: str
    ) -> None:
        state.add_floats(tenant, "v", np.ones(2))
        with pytest.raises(StoreError, match="'v' holds a vector of another length"):
            state.write_many(
                tenant,
                [AddFloats("v", np.ones(3)), SetValue("k", b"1"), AddFloats("w", np.ones(2))],
            )
        assert state.get(tenant, "k") == b"1"
        stored = state.get_many(tenant, ["v", "w"])
        assert [np.frombuffer(v or b"", dtype="<f8").tolist() for v in stored] == [
            [1.0, 1.0],
            [1.0, 1.0],
        ]
