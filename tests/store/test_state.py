"""The online-state contract over the in-process backend and the real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from penchant.errors import ConfigError
from penchant.store.state import MemoryState, StateStore, open_state
from penchant.testing import StateContract


class TestMemoryState(StateContract):
    @pytest.fixture
    def state(self) -> StateStore:
        return MemoryState()


class TestRedisState(StateContract):
    @pytest.fixture
    def state(self, redis_url: str) -> Iterator[StateStore]:
        yield open_state(redis_url)


def test_unknown_state_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="memory://"):
        open_state("mongodb://x")
