"""Alembic migrations create exactly the tables the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from penchant.store import open_store
from penchant.store.sql.tables import metadata


def test_migrated_schema_matches_the_table_definitions(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        store.close()


def test_opening_twice_does_not_migrate_again(store_url: str) -> None:
    open_store(store_url).close()
    store = open_store(store_url)
    try:
        with store.engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
        assert revision == "0006"
    finally:
        store.close()
