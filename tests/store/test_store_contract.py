"""The store contract over SQLite and PostgreSQL (the `store_url` fixture runs both)."""

from penchant.testing import StoreContract


class TestSqlStores(StoreContract):
    """Every contract test, on each persistent backend."""
