"""Engines for SQLite and PostgreSQL: durability settings, write transactions, migrations."""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from penchant.errors import ConfigError, StoreError

Synchronous = Literal["FULL", "NORMAL", "OFF"]
_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_WRITE = "penchant_write"


def make_engine(
    url: str, *, synchronous: Synchronous = "FULL", busy_timeout_ms: int = 30_000
) -> Engine:
    """Create an engine for a store URL.

    Args:
        url: `sqlite:///path/to/file.db` or `postgresql://user@host:port/db`.
        synchronous: SQLite's `synchronous` pragma; FULL makes a commit survive power loss.
        busy_timeout_ms: how long a SQLite writer waits for the lock before failing.

    Returns:
        A SQLAlchemy engine whose write transactions take the write lock up front.

    Raises:
        ConfigError: the URL is not a supported store URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid store URL {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed.set(drivername="sqlite+pysqlite"))
        _sqlite_events(engine, synchronous, busy_timeout_ms)
        return engine
    if backend in ("postgresql", "postgres"):
        return create_engine(
            parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True, pool_size=8
        )
    raise ConfigError(
        f"unsupported store URL scheme {parsed.drivername!r}; use sqlite or postgresql"
    )


def _sqlite_events(engine: Engine, synchronous: Synchronous, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA cache_size=-131072")
        cursor.execute("PRAGMA temp_store=MEMORY")
        # Deleted content is overwritten with zeros, so that an erased person's bytes do not
        # linger in free pages of the file (erasure then checkpoints the WAL).
        cursor.execute("PRAGMA secure_delete=ON")
        # Checkpoint every ~64 MiB of WAL instead of every 4 MiB: pages rewritten by many
        # commits (indexes, the dictionary) reach the database file once per checkpoint.
        cursor.execute("PRAGMA wal_autocheckpoint=16384")
        cursor.execute("PRAGMA journal_size_limit=67108864")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the lock at BEGIN, so a read-then-write cannot be overtaken.
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class _WriterQueue:
    """One SQLite writer at a time, queued in the kernel rather than in SQLite's busy handler.

    SQLite lets a blocked writer sleep and retry with growing back-off (up to 100 ms a try),
    which wastes most of the lock's free time when several threads or worker processes
    write. Here writers wait on a thread lock (within a process) and then on an exclusive
    `flock` of a file beside the database (across processes), and are woken the moment the
    previous writer is done.
    """

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600) if path is not None else None

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self._fd is None:
                yield
                return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


_WRITERS: weakref.WeakKeyDictionary[Engine, _WriterQueue] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> AbstractContextManager[object]:
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _WRITERS_GUARD:
        queue = _WRITERS.get(engine)
        if queue is None:
            database = engine.url.database
            file = Path(database + ".lock") if database and database != ":memory:" else None
            queue = _WRITERS[engine] = _WriterQueue(file)
    return queue.hold()


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction; it commits (durably) when the block exits without error."""
    try:
        with _writer_lock(engine), engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn
    except OperationalError as exc:
        raise StoreError(f"store write failed: {exc.orig}") from exc


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read transaction: one consistent snapshot."""
    with engine.connect() as conn, conn.begin():
        yield conn


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest revision; does nothing when it already is."""
    head = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    with write_tx(engine) as conn:
        command.upgrade(_alembic_config(conn), "head")


def now_micros() -> int:
    """The current time in microseconds since the epoch (the `updated_at` columns)."""
    return int(time.time() * 1_000_000)


def upsert(conn: Connection, table: Table, keys: list[str], row: dict[str, Any]) -> None:
    """Insert a row, or update every other column of the row with the same `keys`."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(**row)
    updates = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))
