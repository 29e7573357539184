"""The SQL event log: idempotent appends, streaming scans and columnar interaction reads."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, Select, and_, func, select
from sqlalchemy.sql import ColumnElement

from penchant.schema import Event, EventContext
from penchant.schema.common import from_micros, to_micros
from penchant.store.base import EVENT_TABLE_SCHEMA, Ack, EventFilter
from penchant.store.convert import events_to_table
from penchant.store.sql.dictionary import Dictionary, chunks, placeholder, raw_cursor
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

_KEY_COLUMNS = (("user_id", KIND_USER), ("session_id", KIND_SESSION), ("item_id", KIND_ITEM))
_INSERT_COLUMNS = "tenant_ix, event_id, user_ix, session_ix, item_ix, type_ix, value, ts, context"


class SqlEventStore:
    """`EventStore` over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, codes: Dictionary) -> None:
        self._engine = engine
        self._codes = codes

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
            self._codes.sync_epoch(conn, tenant_ix)
            columns: dict[str, list[Any]] = {}
            for name, kind in (*_KEY_COLUMNS, ("type", KIND_TYPE)):
                columns[name] = self._encode(conn, tenant_ix, kind, table.column(name))
            ids: list[str | None] = table.column("event_id").to_pylist()
            keep, duplicates = self._fresh(conn, tenant_ix, ids)
            n = table.num_rows
            values: dict[str, list[Any]] = {
                "tenant_ix": [tenant_ix] * n,
                "event_id": ids,
                "user_ix": columns["user_id"],
                "session_ix": columns["session_id"],
                "item_ix": columns["item_id"],
                "type_ix": columns["type"],
                "value": table.column("value").to_pylist(),
                "ts": table.column("ts").to_pylist(),
                "context": table.column("context").to_pylist(),
            }
            names = list(values)
            if conn.dialect.name == "sqlite":
                # Columns null in every row are left out: binding fewer parameters per row
                # is most of the speed of a bulk import.
                source = {
                    "event_id": "event_id",
                    "user_ix": "user_id",
                    "session_ix": "session_id",
                    "item_ix": "item_id",
                    "value": "value",
                    "context": "context",
                }
                names = [
                    c for c in names if c not in source or table.column(source[c]).null_count < n
                ]
            rows: Iterable[tuple[Any, ...]] = zip(*(values[c] for c in names), strict=True)
            if keep is not None:
                rows = (row for row, ok in zip(rows, keep, strict=True) if ok)
            stored, lost = self._insert(conn, names, list(rows))
            duplicates.extend(lost)
            if batch_key is not None:
                conn.execute(
                    import_batches.insert().values(
                        tenant_ix=tenant_ix,
                        batch_key=batch_key,
                        stored=stored,
                        at=int(time.time() * 1_000_000),
                    )
                )
        return Ack(stored=stored, duplicates=tuple(duplicates))

    def _encode(self, conn: Any, tenant_ix: int, kind: int, column: pa.ChunkedArray) -> list[Any]:
        n = len(column)
        if column.null_count == n:
            return [None] * n
        encoded = pc.dictionary_encode(column.combine_chunks())
        keys = encoded.dictionary.to_pylist()
        mapping = self._codes.encode(conn, tenant_ix, kind, keys)
        lut = np.fromiter((mapping[k] for k in keys), dtype=np.int64, count=len(keys))
        indices = encoded.indices
        codes: list[Any] = lut[pc.fill_null(indices, 0).to_numpy()].tolist()
        if indices.null_count:
            for i in np.flatnonzero(indices.is_null().to_numpy(zero_copy_only=False)):
                codes[i] = None
        return codes

    def _fresh(
        self, conn: Any, tenant_ix: int, ids: list[str | None]
    ) -> tuple[list[bool] | None, list[str]]:
        """Which rows to store: the first of each new event_id, and every row without one."""
        present = [i for i in ids if i is not None]
        if not present:
            return None, []
        stored: set[str] = set()
        for part in chunks(sorted(set(present))):
            rows = conn.execute(
                select(events.c.event_id).where(
                    events.c.tenant_ix == tenant_ix, events.c.event_id.in_(part)
                )
            )
            stored.update(r[0] for r in rows)
        keep: list[bool] = []
        duplicates: list[str] = []
        seen: set[str] = set()
        for event_id in ids:
            if event_id is None:
                keep.append(True)
            elif event_id in stored or event_id in seen:
                keep.append(False)
                duplicates.append(event_id)
            else:
                seen.add(event_id)
                keep.append(True)
        return keep, duplicates

    def _insert(
        self, conn: Any, names: list[str], rows: list[tuple[Any, ...]]
    ) -> tuple[int, list[str]]:
        """Insert rows; return how many were stored and the ids a concurrent writer won."""
        if not rows:
            return 0, []
        if conn.dialect.name != "postgresql":
            # SQLite: BEGIN IMMEDIATE holds the only write lock, so `_fresh` saw everything.
            ph = placeholder(conn)
            raw_cursor(conn).executemany(
                f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join([ph] * len(names))})",
                rows,
            )
            return len(rows), []
        driver = conn.connection.driver_connection
        keyed = [r[1] for r in rows if r[1] is not None]
        if not keyed:
            with (
                driver.cursor() as cur,
                cur.copy(f"COPY events ({_INSERT_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return len(rows), []
        # PostgreSQL writers run concurrently: let the unique index arbitrate, in input order.
        columns = list(zip(*rows, strict=True))
        with driver.cursor() as cur:
            cur.execute(
                f"INSERT INTO events ({_INSERT_COLUMNS}) SELECT * FROM unnest("
                "%s::int[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], "
                "%s::bigint[], %s::float8[], %s::bigint[], %s::text[]) "
                "ON CONFLICT (tenant_ix, event_id) WHERE event_id IS NOT NULL DO NOTHING "
                "RETURNING event_id",
                [list(c) for c in columns],
            )
            won = {r[0] for r in cur.fetchall()}
        lost = [i for i in keyed if i not in won]
        return len(rows) - len(lost), lost

    def delete_user(self, tenant: str, user_id: str) -> int:
        """See `EventStore.delete_user`; also forgets the user's code."""
        with write_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return 0
            code = self._codes.lookup(conn, tenant_ix, KIND_USER, user_id)
            if code is None:
                return 0
            result = conn.execute(
                events.delete().where(events.c.tenant_ix == tenant_ix, events.c.user_ix == code)
            )
            self._codes.delete(conn, code)
            self._codes.bump_epoch(conn, tenant_ix)
            return int(result.rowcount)

    # -- reads ----------------------------------------------------------------------------
    def count(self, tenant: str) -> int:
        """See `EventStore.count`."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return 0
            n = conn.execute(
                select(func.count()).select_from(events).where(events.c.tenant_ix == tenant_ix)
            ).scalar_one()
            return int(n)

    def scan(
        self, tenant: str, where: EventFilter | None = None, *, batch_size: int = 10_000
    ) -> Iterator[list[Event]]:
        """See `EventStore.scan`. Pages by sequence number, so memory stays flat."""
        where = where or EventFilter()
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            conditions = None if tenant_ix is None else self._conditions(conn, tenant_ix, where)
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
    known = np.array([c >= 0 and int(c) in keys for c in np.unique(codes)], dtype=bool)
    uniq = np.unique(codes)[known]
    positions = np.searchsorted(uniq, codes)
    positions = np.clip(positions, 0, max(len(uniq) - 1, 0))
    mask = ~np.isin(codes, uniq)
    indices = pa.array(positions.astype(np.int32), mask=mask, type=pa.int32())
    dictionary_values = pa.array([keys[int(c)] for c in uniq], type=pa.string())
    return pa.DictionaryArray.from_arrays(indices, dictionary_values)


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
