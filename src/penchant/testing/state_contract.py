"""`StateContract`: the behaviour every online-state backend must show."""

from __future__ import annotations

import time
import uuid

import pytest

from penchant.store.state import StateStore


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
