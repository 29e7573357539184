"""Shared fixtures: real PostgreSQL and Redis when they run, datasets when shared/ is there.

Without PENCHANT_REQUIRE_SERVICES=1 a test that needs a missing service skips with the
reason; with it (CI), the same test fails.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from penchant.store import Store, open_store

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REQUIRE = os.environ.get("PENCHANT_REQUIRE_SERVICES") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip (or, when services are required, fail) if a service is not listening."""
    if _reachable(host, port):
        return
    message = f"{name} is not running on {host}:{port}"
    if REQUIRE:
        pytest.fail(f"{message} and PENCHANT_REQUIRE_SERVICES=1")
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL on a fresh schema of the `test` database, dropped afterwards."""
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"host={PG_HOST} port={PG_PORT} dbname={PG_DB} user=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield (f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{PG_DB}?options=-csearch_path%3D{schema}")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL in a temporary directory."""
    return f"sqlite:///{tmp_path / 'penchant.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each persistent backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'penchant.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on each persistent backend in turn (a test module may define its own)."""
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on the local server; keys written under a random tenant are removed."""
    need_service("Redis", REDIS_HOST, REDIS_PORT)
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
