"""The SQL event log: idempotent appends, streaming scans and columnar interaction reads."""

from __future__ import annotations

import collections
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import Engine, Select, and_, func, select
from sqlalchemy.sql import ColumnElement

from penchant.schema import Event, EventContext
from penchant.schema.common import from_micros, to_micros
from penchant.store.base import EVENT_TABLE_SCHEMA, Ack, EventFilter
from penchant.store.convert import events_to_table
from penchant.store.sql import event_users
from penchant.store.sql.dictionary import Dictionary, placeholder, raw_cursor
from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.tables import (
    KIND_ITEM,
    KIND_SESSION,
    KIND_TYPE,
    KIND_USER,
    dictionary,
    events,
    import_batches,
)
from penchant.store.sql.tombstones import Tombstones

_KEY_COLUMNS = (
    ("user_id", "user_ix", KIND_USER),
    ("session_id", "session_ix", KIND_SESSION),
    ("item_id", "item_ix", KIND_ITEM),
    ("type", "type_ix", KIND_TYPE),
)
_ROW_COLUMNS = (
    "tenant_ix",
    "event_id",
    "user_ix",
    "session_ix",
    "item_ix",
    "type_ix",
    "value",
    "ts",
    "context",
)


class SqlEventStore:
    """`EventStore` over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, codes: Dictionary, tombstones: Tombstones) -> None:
        self._engine = engine
        self._codes = codes
        self._tombstones = tombstones

    # -- writes ---------------------------------------------------------------------------
    def append(self, tenant: str, items: Sequence[Event]) -> Ack:
        """See `EventStore.append`."""
        return self.append_table(tenant, events_to_table(items))

    def append_table(self, tenant: str, table: pa.Table, *, batch_key: str | None = None) -> Ack:
        """See `EventStore.append_table`."""
        table = table.select(list(EVENT_TABLE_SCHEMA.names)).cast(EVENT_TABLE_SCHEMA)
        with write_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=True)
            assert tenant_ix is not None
            if batch_key is not None:
                done = conn.execute(
                    select(import_batches.c.stored).where(
                        import_batches.c.tenant_ix == tenant_ix,
                        import_batches.c.batch_key == batch_key,
                    )
                ).first()
                if done is not None:
                    return Ack(stored=0, skipped_batch=True)
            if table.num_rows == 0:
                return Ack(stored=0)
            epoch = self._codes.sync_epoch(conn, tenant_ix)
            table, refused = self._refuse_erased(conn, tenant, tenant_ix, epoch, table)
            if table.num_rows == 0:
                return Ack(stored=0, refused=refused)
            codes = {
                target: self._encode(conn, tenant_ix, kind, table.column(source))
                for source, target, kind in _KEY_COLUMNS
            }
            rows = pa.table(
                {
                    "tenant_ix": pa.array(np.full(table.num_rows, tenant_ix, dtype=np.int64)),
                    "event_id": table.column("event_id"),
                    **codes,
                    "value": table.column("value"),
                    "ts": table.column("ts"),
                    "context": table.column("context"),
                }
            )
            if conn.dialect.name == "postgresql":
                stored, duplicates = _insert_postgres(conn, int(tenant_ix), rows)
            else:
                stored, duplicates = _insert_sqlite(conn, rows)
            if batch_key is not None:
                conn.execute(
                    import_batches.insert().values(
                        tenant_ix=tenant_ix,
                        batch_key=batch_key,
                        stored=stored,
                        at=int(time.time() * 1_000_000),
                    )
                )
        return Ack(stored=stored, duplicates=tuple(duplicates), refused=refused)

    def _refuse_erased(
        self, conn: Any, tenant: str, tenant_ix: int, epoch: int, table: pa.Table
    ) -> tuple[pa.Table, tuple[int, ...]]:
        """Drop the rows of erased people: a later event must not re-create them."""
        column = table.column("user_id")
        # no tombstone (the usual case): no distinct ids to compute on a bulk import's chunks
        if column.null_count == len(column) or not self._tombstones.any(conn, tenant_ix, epoch):
            return table, ()
        distinct = pc.unique(column.drop_null()).to_pylist()
        erased = self._tombstones.erased(conn, tenant, tenant_ix, epoch, distinct)
        if not erased:
            return table, ()
        hit = pc.fill_null(pc.is_in(column, value_set=pa.array(sorted(erased))), False)
        refused = tuple(int(i) for i in np.flatnonzero(hit.to_numpy(zero_copy_only=False)))
        return table.filter(pc.invert(hit)), refused

    def _encode(self, conn: Any, tenant_ix: int, kind: int, column: pa.ChunkedArray) -> pa.Array:
        """Dictionary codes of a key column, as int64 with the column's nulls."""
        n = len(column)
        if column.null_count == n:
            return pa.nulls(n, pa.int64())
        encoded = pc.dictionary_encode(column.combine_chunks())
        lut = self._codes.encode(conn, tenant_ix, kind, encoded.dictionary)
        indices = encoded.indices
        codes = lut[pc.fill_null(indices, 0).to_numpy()]
        if indices.null_count:
            return pa.array(codes, mask=indices.is_null().to_numpy(zero_copy_only=False))
        return pa.array(codes)

    def delete_user(self, tenant: str, user_id: str) -> int:
        """See `EventStore.delete_user`; also forgets the user's code."""
        with write_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return 0
            code = self._codes.lookup(conn, tenant_ix, KIND_USER, user_id)
            if code is None:
                return 0
            deleted = event_users.delete_user_events(conn, tenant_ix, code)
            self._codes.delete(conn, code)
            self._codes.bump_epoch(conn, tenant_ix)
            return len(deleted)

    def delete_before(
        self, tenant: str, event_type: str, before: datetime, *, batch_size: int = 10_000
    ) -> int:
        """See `EventStore.delete_before`.

        The log is walked once, in windows of `batch_size` sequence numbers (a primary key
        range, so the work per chunk stays the same however large the log and whatever the
        planner believes); a chunk's rows are found in read transactions and deleted by
        primary key in a write transaction of their own that checks the condition again, so
        the write lock is held only for the deletes. Rows stored after the walk began are
        left for the next run. Rows of `event_users` whose events are all gone are dropped
        at the end.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            code = None
            if tenant_ix is not None:
                code = self._codes.lookup(conn, tenant_ix, KIND_TYPE, event_type)
            top = int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())
        if tenant_ix is None or code is None:
            return 0
        condition = (int(tenant_ix), int(code), to_micros(before))
        deleted, done = 0, 0
        while done < top:
            seqs, done = self._expired(condition, done, top, batch_size)
            if seqs:
                with write_tx(self._engine) as conn:
                    deleted += _delete_rows(conn, seqs, condition)
        if deleted:
            with write_tx(self._engine) as conn:
                event_users.drop_gone(conn, int(tenant_ix))
        return deleted

    def _expired(
        self, condition: tuple[int, int, int], after: int, top: int, limit: int
    ) -> tuple[list[int], int]:
        """Up to `limit` sequence numbers of expired rows after `after`, read window by
        window (each its own short read transaction), and how far the walk got."""
        seqs: list[int] = []
        while after < top and len(seqs) < limit:
            upto = min(after + limit, top)
            with read_tx(self._engine) as conn:
                ph = placeholder(conn)
                cur = raw_cursor(conn)
                cur.execute(
                    f"SELECT seq FROM events WHERE seq > {ph} AND seq <= {ph} "
                    f"AND {_EXPIRED.format(ph=ph)} ORDER BY seq",
                    (after, upto, *condition),
                )
                seqs.extend(int(row[0]) for row in cur.fetchall())
            after = upto
        if len(seqs) > limit:
            seqs = seqs[:limit]
            after = seqs[-1]
        return seqs, after

    # -- reads ----------------------------------------------------------------------------
    def event_types(self, tenant: str) -> list[str]:
        """See `EventStore.event_types`."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return []
            rows = conn.execute(
                select(dictionary.c.key)
                .where(dictionary.c.tenant_ix == tenant_ix, dictionary.c.kind == KIND_TYPE)
                .order_by(dictionary.c.key)
            )
            return [str(key) for (key,) in rows]

    def count(self, tenant: str, where: EventFilter | None = None) -> int:
        """See `EventStore.count`."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return 0
            conditions = self._conditions(conn, tenant_ix, where or EventFilter())
            if conditions is None:
                return 0
            n = conn.execute(
                select(func.count()).select_from(events).where(*conditions)
            ).scalar_one()
            return int(n)

    def scan(
        self, tenant: str, where: EventFilter | None = None, *, batch_size: int = 10_000
    ) -> Iterator[list[Event]]:
        """See `EventStore.scan`. Pages by sequence number, so memory stays flat."""
        conditions = self._filter(tenant, where)
        if conditions is None:
            return
        last = 0
        while True:
            with read_tx(self._engine) as conn:
                stmt = self._scan_query(conditions, last, batch_size)
                rows = conn.execute(stmt).all()
            if not rows:
                return
            last = int(rows[-1][0])
            yield [_row_to_event(row) for row in rows]
            if len(rows) < batch_size:
                return

    def scan_tables(
        self, tenant: str, where: EventFilter | None = None, *, batch_size: int = 100_000
    ) -> Iterator[pa.Table]:
        """See `EventStore.scan_tables`. Pages by sequence number; ids are decoded once per
        batch through the dictionary, with no record built per row."""
        conditions = self._filter(tenant, where)
        if conditions is None:
            return
        keys: dict[int, str] = {}
        last = 0
        while True:
            with read_tx(self._engine) as conn:
                stmt = (
                    select(
                        events.c.seq,
                        events.c.event_id,
                        events.c.user_ix,
                        events.c.session_ix,
                        events.c.item_ix,
                        events.c.type_ix,
                        events.c.value,
                        events.c.ts,
                        events.c.context,
                    )
                    .where(and_(*conditions, events.c.seq > last))
                    .order_by(events.c.seq)
                    .limit(batch_size)
                )
                rows = conn.execute(stmt).all()
                if not rows:
                    return
                cols = list(zip(*rows, strict=True))
                codes = [
                    np.array([-1 if c is None else c for c in cols[i]], dtype=np.int64)
                    for i in (2, 3, 4, 5)
                ]
                wanted = np.unique(np.concatenate(codes))
                new = [int(c) for c in wanted if c >= 0 and int(c) not in keys]
                keys.update(self._codes.decode(conn, new))
            last = int(rows[-1][0])
            yield pa.table(
                {
                    "event_id": pa.array(cols[1], pa.string()),
                    **{
                        name: _string_array(code, keys)
                        for name, code in zip(ID_COLUMNS, codes, strict=True)
                    },
                    "value": pa.array(cols[6], pa.float64()),
                    "ts": pa.array(cols[7], pa.int64()),
                    "context": pa.array(cols[8], pa.string()),
                },
                schema=EVENT_TABLE_SCHEMA,
            )
            if len(rows) < batch_size:
                return

    def _filter(self, tenant: str, where: EventFilter | None) -> list[ColumnElement[bool]] | None:
        """The SQL conditions of a filter, or None when nothing can match (an unknown tenant,
        or a person, session, item or type the tenant never stored)."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return None
            return self._conditions(conn, tenant_ix, where or EventFilter())

    def _conditions(
        self, conn: Any, tenant_ix: int, where: EventFilter
    ) -> list[ColumnElement[bool]] | None:
        conditions: list[ColumnElement[bool]] = [events.c.tenant_ix == tenant_ix]
        for value, kind, column in (
            (where.user_id, KIND_USER, events.c.user_ix),
            (where.session_id, KIND_SESSION, events.c.session_ix),
            (where.item_id, KIND_ITEM, events.c.item_ix),
        ):
            if value is not None:
                code = self._codes.lookup(conn, tenant_ix, kind, value)
                if code is None:
                    return None
                conditions.append(column == code)
        if where.types:
            codes = [self._codes.lookup(conn, tenant_ix, KIND_TYPE, t) for t in where.types]
            known = [c for c in codes if c is not None]
            if not known:
                return None
            conditions.append(events.c.type_ix.in_(known))
        if where.since is not None:
            conditions.append(events.c.ts >= to_micros(where.since))
        if where.until is not None:
            conditions.append(events.c.ts < to_micros(where.until))
        return conditions

    @staticmethod
    def _scan_query(conditions: list[ColumnElement[bool]], after: int, limit: int) -> Select[Any]:
        du, ds, di, dt = (dictionary.alias(n) for n in ("du", "ds", "di", "dt"))
        return (
            select(
                events.c.seq,
                events.c.event_id,
                du.c.key,
                ds.c.key,
                di.c.key,
                dt.c.key,
                events.c.value,
                events.c.ts,
                events.c.context,
            )
            .select_from(
                events.outerjoin(du, du.c.ix == events.c.user_ix)
                .outerjoin(ds, ds.c.ix == events.c.session_ix)
                .outerjoin(di, di.c.ix == events.c.item_ix)
                .join(dt, dt.c.ix == events.c.type_ix)
            )
            .where(and_(*conditions, events.c.seq > after))
            .order_by(events.c.seq)
            .limit(limit)
        )

    def interactions(
        self, tenant: str, since: datetime | None = None, *, batch_size: int = 100_000
    ) -> Iterator[pa.Table]:
        """See `EventStore.interactions`."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
        if tenant_ix is None:
            return
        keys: dict[int, str] = {}
        last = 0
        since_us = to_micros(since) if since is not None else None
        while True:
            with read_tx(self._engine) as conn:
                cur = raw_cursor(conn)
                ph = placeholder(conn)
                extra = f" AND ts >= {ph}" if since_us is not None else ""
                params: tuple[Any, ...] = (tenant_ix, last)
                if since_us is not None:
                    params = (*params, since_us)
                cur.execute(
                    "SELECT seq, COALESCE(user_ix, -1), COALESCE(session_ix, -1), "
                    "COALESCE(item_ix, -1), type_ix, value, ts FROM events "
                    f"WHERE tenant_ix = {ph} AND seq > {ph}{extra} "
                    f"ORDER BY seq LIMIT {int(batch_size)}",
                    params,
                )
                rows = cur.fetchall()
                if not rows:
                    return
                cols = list(zip(*rows, strict=True))
                codes = [np.asarray(cols[i], dtype=np.int64) for i in (1, 2, 3, 4)]
                wanted = np.unique(np.concatenate(codes))
                new = [int(c) for c in wanted if c >= 0 and int(c) not in keys]
                keys.update(self._codes.decode(conn, new))
            last = int(rows[-1][0])
            values = np.array([np.nan if v is None else v for v in cols[5]], dtype=np.float64)
            yield pa.table(
                {
                    "user_id": _dict_array(codes[0], keys),
                    "session_id": _dict_array(codes[1], keys),
                    "item_id": _dict_array(codes[2], keys),
                    "type": _dict_array(codes[3], keys),
                    "value": pa.array(values, mask=np.isnan(values)),
                    "timestamp": pa.array(
                        np.asarray(cols[6], dtype=np.int64), type=pa.int64()
                    ).cast(pa.timestamp("us", tz="UTC")),
                }
            )
            if len(rows) < batch_size:
                return


def _dict_array(codes: np.ndarray[Any, Any], keys: dict[int, str]) -> pa.DictionaryArray:
    """A dictionary array over the keys of the codes; -1 (or an erased code) becomes null."""
    present = np.unique(codes)
    uniq = present[np.array([c >= 0 and int(c) in keys for c in present], dtype=bool)]
    positions = np.searchsorted(uniq, codes)
    positions = np.clip(positions, 0, max(len(uniq) - 1, 0))
    mask = ~np.isin(codes, uniq)
    indices = pa.array(positions.astype(np.int32), mask=mask, type=pa.int32())
    dictionary_values = pa.array([keys[int(c)] for c in uniq], type=pa.string())
    return pa.DictionaryArray.from_arrays(indices, dictionary_values)


#: The dictionary-coded columns of `scan_tables`, in the order of the events table's codes.
ID_COLUMNS = ("user_id", "session_id", "item_id", "type")


def _string_array(codes: np.ndarray[Any, Any], keys: dict[int, str]) -> pa.Array:
    """The keys of dictionary codes as a string array; -1 (or an erased code) is null."""
    return pa.array([keys.get(int(c)) if c >= 0 else None for c in codes], pa.string())


def _row_to_event(row: Any) -> Event:
    _seq, event_id, user, session, item, kind, value, ts, context = row
    return Event.model_construct(
        event_id=event_id,
        user_id=user,
        session_id=session,
        item_id=item,
        type=kind,
        value=value,
        timestamp=from_micros(ts),
        context=EventContext.model_validate(orjson.loads(context)) if context else None,
    )


def _pylist(column: pa.ChunkedArray) -> list[Any]:
    """Python values of a column; through numpy when it has no nulls, which is much faster."""
    if column.null_count == 0 and pa.types.is_integer(column.type):
        return column.to_numpy().tolist()  # type: ignore[no-any-return]
    return column.to_pylist()  # type: ignore[no-any-return]


#: The rows `delete_before` removes: a tenant's events of one type older than a time. No
#: index can serve these columns today (the only one, on (tenant_ix, event_id), is partial
#: and these conditions do not imply its `event_id IS NOT NULL`), so the `+` changes no plan
#: now; it keeps a future index by tenant, type or time from being chosen over the primary
#: key's range: through a former index on (tenant_ix, user_ix), both planners read (and
#: sorted) all of the tenant's rows for every chunk (9 times slower on 1M rows on SQLite).
_EXPIRED = "+tenant_ix = {ph} AND +type_ix = {ph} AND +ts < {ph}"


def _delete_rows(conn: Any, seqs: list[int], condition: tuple[int, int, int]) -> int:
    """Delete the rows of these sequence numbers that still match; return how many.

    The numbers travel as one parameter (a JSON array on SQLite, an array on PostgreSQL),
    so a chunk of any size is one statement under the drivers' parameter limits.
    """
    cur = raw_cursor(conn)
    if conn.dialect.name == "postgresql":
        where = _EXPIRED.format(ph="%s")
        cur.execute(f"DELETE FROM events WHERE seq = ANY(%s) AND {where}", (seqs, *condition))
    else:
        where = _EXPIRED.format(ph="?")
        cur.execute(
            f"DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?)) AND {where}",
            (orjson.dumps(seqs).decode(), *condition),
        )
    return int(cur.rowcount)


def _insert_sqlite(conn: Any, rows: pa.Table) -> tuple[int, list[str]]:
    """Insert rows on SQLite; return how many were stored and the ids that were not."""
    n = rows.num_rows
    # Binding fewer parameters per row is most of the speed of a bulk import: the tenant
    # (an integer this store made) is a literal, and columns null in every row are left out.
    tenant_ix = int(rows.column("tenant_ix")[0].as_py())
    names = [c for c in _ROW_COLUMNS[1:] if rows.column(c).null_count < n]
    insert = (
        f"INSERT INTO events (tenant_ix, {', '.join(names)}) "
        f"VALUES ({tenant_ix}, {', '.join('?' * len(names))})"
    )
    values = zip(*(_pylist(rows.column(c)) for c in names), strict=True)
    cur = raw_cursor(conn)
    # BEGIN IMMEDIATE holds the only write lock: rows after `before` are this batch's.
    before = int(cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    users = event_users.user_codes(rows.column("user_ix"))
    if rows.column("event_id").null_count == n:
        if "context" in names:
            _insert_values(cur, tenant_ix, names, rows)
        else:
            _insert_numbers(cur, tenant_ix, names, rows)
        event_users.record_sqlite(conn, tenant_ix, before, users)
        return n, []
    cur.executemany(
        f"{insert} ON CONFLICT (tenant_ix, event_id) WHERE event_id IS NOT NULL DO NOTHING",
        values,
    )
    stored = int(cur.rowcount)
    event_users.record_sqlite(conn, tenant_ix, before, users)
    if stored == n:
        return n, []
    cur.execute("SELECT event_id FROM events WHERE seq > ? AND event_id IS NOT NULL", (before,))
    return stored, _not_stored(rows.column("event_id").to_pylist(), [r[0] for r in cur])


def _insert_values(cur: Any, tenant_ix: int, names: list[str], rows: pa.Table) -> None:
    """Insert rows with many rows per statement (as many as SQLite binds parameters).

    `executemany` steps SQLite once per row and releases the GIL around every step: a
    thread writing this way (the impression log) made each request on the event loop of its
    process wait for the GIL, doubling the time of a recommendation in a measurement.
    """
    limit = cur.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(limit // len(names), 2_000))
    columns = [_pylist(rows.column(c)) for c in names]
    head = f"INSERT INTO events (tenant_ix, {', '.join(names)}) VALUES "
    one = f"({int(tenant_ix)}, {', '.join('?' * len(names))})"
    for start in range(0, rows.num_rows, per):
        chunk = [col[start : start + per] for col in columns]
        count = len(chunk[0])
        params = [value for row in zip(*chunk, strict=True) for value in row]
        cur.execute(head + ", ".join([one] * count), params)


def _insert_numbers(cur: Any, tenant_ix: int, names: list[str], rows: pa.Table) -> None:
    """Insert rows of numbers only, handed to SQLite as one JSON array.

    Binding parameters row by row from Python costs more than SQLite parsing the same
    numbers from JSON, and pyarrow writes that JSON in C++ (about 1.3x the rows a second
    of `executemany` here; see docs/benchmarks.md).
    """
    text = [pc.cast(rows.column(c), pa.string()).combine_chunks() for c in names]
    row = pc.binary_join_element_wise(*text, ",", null_handling="replace", null_replacement="null")
    offsets = pa.array([0, len(row)], pa.int32())
    body = pc.binary_join(pa.ListArray.from_arrays(offsets, row), "],[")[0].as_py()
    fields = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(names)))
    cur.execute(
        f"INSERT INTO events (tenant_ix, {', '.join(names)}) "
        f"SELECT {int(tenant_ix)}, {fields} FROM json_each(?)",
        (f"[[{body}]]",),
    )


def _not_stored(ids: list[str | None], stored: list[str]) -> list[str]:
    """Ids of a batch that were not stored: each stored id counts for its first row only."""
    left = collections.Counter(stored)
    out: list[str] = []
    for event_id in ids:
        if event_id is None:
            continue
        if left[event_id] > 0:
            left[event_id] -= 1
        else:
            out.append(event_id)
    return out


def _insert_postgres(conn: Any, tenant_ix: int, rows: pa.Table) -> tuple[int, list[str]]:
    """Insert rows on PostgreSQL; return how many were stored and the ids another writer won."""
    n = rows.num_rows
    if n == 0:
        return 0, []
    driver = conn.connection.driver_connection
    names = ", ".join(_ROW_COLUMNS)
    if rows.column("event_id").null_count == n:
        start = event_users.copy_start(conn)
        # No ids, so no conflicts: stream the batch as CSV written in C++ by pyarrow, with
        # only the columns that hold something (less for the server to parse).
        used = [c for c in _ROW_COLUMNS if rows.column(c).null_count < n]
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(
            rows.select(used), sink, write_options=pa_csv.WriteOptions(include_header=False)
        )
        with (
            driver.cursor() as cur,
            cur.copy(f"COPY events ({', '.join(used)}) FROM STDIN WITH (FORMAT csv)") as copy,
        ):
            copy.write(sink.getvalue().to_pybytes())
        event_users.record_copy(conn, tenant_ix, start, event_users.user_codes(rows["user_ix"]))
        return n, []
    # Writers run concurrently here: the unique index arbitrates, in input order.
    with driver.cursor() as cur:
        cur.execute(
            f"INSERT INTO events ({names}) SELECT * FROM unnest("
            "%s::int[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
            "%s::float8[], %s::bigint[], %s::text[]) "
            "ON CONFLICT (tenant_ix, event_id) WHERE event_id IS NOT NULL DO NOTHING "
            "RETURNING event_id, seq, coalesce(user_ix, -1)",
            [rows.column(c).to_pylist() for c in _ROW_COLUMNS],
        )
        returned = cur.fetchall()
    if returned:
        codes = np.asarray([r[1:] for r in returned], dtype=np.int64)
        event_users.record(conn, tenant_ix, codes[:, 0], codes[:, 1])
    stored = [r[0] for r in returned if r[0] is not None]
    return len(returned), _not_stored(rows.column("event_id").to_pylist(), stored)
