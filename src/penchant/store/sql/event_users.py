"""The user column beside the event log: who each appended row belongs to, for erasure."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection

from penchant.errors import StoreError
from penchant.store.sql.dictionary import placeholder, raw_cursor

#: Appends of fewer entries than this are small, and so are rows: small appends extend or
#: merge small rows (see `record`) rather than leave a row each.
SMALL = 8192
#: A row of fewer entries than this is tiny: a small append extends the newest one, which
#: costs a rewrite of about one page (users and explicit seqs fit beside the row on SQLite).
TINY = 240
#: The most entries of a row a large append writes (128 KiB of codes): what an erasure
#: rewrites on PostgreSQL for each row that holds the person (~1 ms here, against ~12 ms
#: for a bulk import's 131,072-row chunk as one row).
LARGEST = 16_384
#: How many of a tenant's newest rows a small append looks at: when all but one of them
#: are small, it merges those.
_RECENT = 8
#: Rows read at a time while looking for a person (a few MiB).
_PAGE = 32
_NONE = -1
_NONE_BYTES = np.array([_NONE], dtype="<i8").tobytes()
#: The first key of the PostgreSQL advisory lock (the second is the tenant) that keeps
#: erasures (and `drop_gone`) apart from appends that rewrite rows: appends hold it shared
#: (and only insert when they cannot), an erasure exclusively, so no row it has yet to read
#: can be merged into one it has read.
_LOCK = 0x70656E63

Codes = np.ndarray[Any, np.dtype[np.int64]]


def user_codes(column: pa.ChunkedArray | pa.Array) -> Codes:
    """The user codes of a batch as int64, with -1 where a row has no user.

    Args:
        column: the batch's `user_ix` column (int64 with nulls).

    Returns:
        One code per row.
    """
    filled = pc.fill_null(column, _NONE)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64)


def record(conn: Connection, tenant_ix: int, seqs: Codes, users: Codes) -> None:
    """Record which user each appended row has, in the append's transaction.

    A large batch makes rows of its own, of at most `LARGEST` entries. A small one extends
    the tenant's newest tiny row (fewer than `TINY` entries: a rewrite of about one page),
    or else, once most of the newest rows are small, merges them all with itself, or else
    makes a row of its own. So each event is rewritten a few times at most, and a tenant's
    rows stay about `SMALL` entries or more, however small its appends.

    Args:
        conn: the append's write transaction.
        tenant_ix: the tenant.
        seqs: the sequence numbers of the stored rows.
        users: their user codes, -1 for none.
    """
    if len(seqs) == 0:
        return
    cur = raw_cursor(conn)
    ph = placeholder(conn)
    postgres = conn.dialect.name == "postgresql"
    if not postgres:
        # SQLite gives a new row max(seq) + 1, so the newest rows' numbers come back after
        # they are deleted; rows starting above this batch's first number are all of such
        # gone rows (and would take the primary key a new row needs).
        cur.execute(
            f"DELETE FROM event_users WHERE tenant_ix = {ph} AND first_seq >= {ph}",
            (tenant_ix, int(seqs.min())),
        )
    small = [] if len(seqs) >= SMALL else _small_rows(cur, ph, tenant_ix, postgres)
    if small and small[-1][1] < TINY * 8:
        small = small[-1:]
    elif len(small) < _RECENT - 1:
        small = []
    if not small:
        for at in range(0, len(seqs), LARGEST):
            _insert(cur, ph, tenant_ix, seqs[at : at + LARGEST], users[at : at + LARGEST])
        return
    firsts = [int(first) for first, _size in small]
    cur.execute(
        "SELECT last_seq, users, seqs, first_seq FROM event_users "
        f"WHERE tenant_ix = {ph} AND first_seq IN ({', '.join([ph] * len(firsts))}) "
        "ORDER BY first_seq",
        (tenant_ix, *firsts),
    )
    rows = cur.fetchall()
    all_seqs = np.concatenate([*(_seqs_of(int(r[3]), r[1], r[2]) for r in rows), seqs])
    blob = np.concatenate([*(np.frombuffer(r[1], dtype="<i8") for r in rows), users])
    # first_seq stays the smallest number of a row (a concurrent appender on PostgreSQL
    # may have taken its numbers before those of the rows it joins; none can be another
    # row's first_seq, so the key stays unique).
    first = min(firsts[0], int(seqs.min()))
    last = max(int(seqs.max()), *(int(r[0]) for r in rows))
    values = (last, blob.astype("<i8", copy=False).tobytes(), _seq_blob(all_seqs))
    moved = first != firsts[0]  # else first_seq stays out of the SET: its index is not written
    cur.execute(
        f"UPDATE event_users SET last_seq = {ph}, users = {ph}, seqs = {ph}"
        + (f", first_seq = {ph}" if moved else "")
        + f" WHERE tenant_ix = {ph} AND first_seq = {ph}",
        (*values, *((first,) if moved else ()), tenant_ix, firsts[0]),
    )
    for other in firsts[1:]:
        cur.execute(
            f"DELETE FROM event_users WHERE tenant_ix = {ph} AND first_seq = {ph}",
            (tenant_ix, other),
        )


def _small_rows(cur: Any, ph: str, tenant_ix: int, postgres: bool) -> list[Any]:
    """The first_seq and size in bytes of the tenant's small rows among its newest, oldest
    first; locked on PostgreSQL, where those another appender holds are skipped (and none
    are taken while an erasure runs)."""
    if postgres:
        cur.execute("SELECT pg_try_advisory_xact_lock_shared(%s, %s)", (_LOCK, tenant_ix))
        if not cur.fetchone()[0]:
            return []
    cur.execute(
        "SELECT first_seq, length(users) FROM event_users "
        f"WHERE tenant_ix = {ph} AND length(users) < {ph} AND first_seq >= coalesce(("
        f"SELECT first_seq FROM event_users WHERE tenant_ix = {ph} "
        f"ORDER BY first_seq DESC LIMIT 1 OFFSET {_RECENT - 1}), 0) ORDER BY first_seq"
        + (" FOR UPDATE SKIP LOCKED" if postgres else ""),
        (tenant_ix, SMALL * 8, tenant_ix),
    )
    return list(cur.fetchall())


def _insert(cur: Any, ph: str, tenant_ix: int, seqs: Codes, users: Codes) -> None:
    """A row of its own for (part of) a batch."""
    cur.execute(
        "INSERT INTO event_users (tenant_ix, first_seq, last_seq, users, seqs) "
        f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph})",
        (
            tenant_ix,
            int(seqs.min()),
            int(seqs.max()),
            users.astype("<i8", copy=False).tobytes(),
            _seq_blob(seqs),
        ),
    )


def record_sqlite(conn: Connection, tenant_ix: int, before: int, users: Codes) -> None:
    """`record` for a SQLite append, which holds the only write lock: its rows are those
    after `before` (the largest sequence number before it).

    Args:
        conn: the append's write transaction.
        tenant_ix: the tenant.
        before: `max(seq)` of the log before the append (0 when empty).
        users: the user codes of the batch as sent; used when every row was stored.
    """
    cur = raw_cursor(conn)
    after = int(cur.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])
    stored = _numbered(cur, before, after, users, "seq > ?", (before,))
    record(conn, tenant_ix, stored[:, 0], stored[:, 1])


def copy_start(conn: Connection) -> int:
    """Before a COPY into `events` on PostgreSQL: a number below every sequence number the
    COPY will take (the sequence hands out increasing numbers across sessions)."""
    cur = raw_cursor(conn)
    cur.execute("SELECT nextval(pg_get_serial_sequence('events', 'seq'))")
    return int(cur.fetchone()[0])


def record_copy(conn: Connection, tenant_ix: int, start: int, users: Codes) -> None:
    """`record` after a COPY on PostgreSQL that began after `copy_start` returned `start`.

    The COPY's rows have numbers in (start, currval]; when that range holds exactly as many
    numbers as rows, they are all this COPY's, in order. Otherwise concurrent appenders took
    some in between, and this transaction's rows are read back from the range by `xmin`.

    Raises:
        StoreError: the rows read back are not the batch (an append inside a savepoint).
    """
    cur = raw_cursor(conn)
    cur.execute("SELECT currval(pg_get_serial_sequence('events', 'seq'))")
    last = int(cur.fetchone()[0])
    where = "seq > %s AND seq <= %s AND xmin = pg_current_xact_id()::xid"
    stored = _numbered(cur, start, last, users, where, (start, last))
    if len(stored) != len(users):
        raise StoreError(f"read back {len(stored)} of {len(users)} copied events")
    record(conn, tenant_ix, stored[:, 0], stored[:, 1])


def _numbered(
    cur: Any, start: int, last: int, users: Codes, where: str, params: tuple[int, ...]
) -> Codes:
    """(seq, user code) of an append's rows, whose numbers lie in (start, last]: the whole
    range in order when it holds one number per row sent, else read back by `where`."""
    if last - start == len(users):
        return np.column_stack([np.arange(start + 1, last + 1, dtype=np.int64), users])
    cur.execute(f"SELECT seq, coalesce(user_ix, -1) FROM events WHERE {where} ORDER BY seq", params)
    return np.asarray(cur.fetchall(), dtype=np.int64).reshape(-1, 2)


def delete_user_events(conn: Connection, tenant_ix: int, code: int) -> list[int | None]:
    """Delete the events of one user code, found through `event_users`, and overwrite the
    code there with -1, so that it remains nowhere.

    Args:
        conn: a write transaction.
        tenant_ix: the tenant.
        code: the user's dictionary code.

    Returns:
        The session code of every deleted row (None where it had none).
    """
    ph = placeholder(conn)
    postgres = conn.dialect.name == "postgresql"
    cur = raw_cursor(conn)
    if postgres:
        # bytea arrives as it is stored, instead of as hex text to decode (~2.5x faster)
        cur = conn.connection.driver_connection.cursor(binary=True)  # type: ignore[union-attr]
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK, tenant_ix))
    found: list[Codes] = []
    after = -1
    # PostgreSQL sends only the rows whose bytes hold the code's somewhere (also unaligned,
    # so a few more): that search costs the server less than sending every row costs both.
    near = " AND position(%s in users) > 0" if postgres else ""
    pattern = np.array([code], dtype="<i8").tobytes()
    while True:
        cur.execute(
            f"SELECT first_seq, users, seqs, {'0' if postgres else 'rowid'} FROM event_users "
            f"WHERE tenant_ix = {ph} AND first_seq > {ph}{near} "
            f"ORDER BY first_seq LIMIT {_PAGE}",
            (tenant_ix, after, pattern) if postgres else (tenant_ix, after),
        )
        page = cur.fetchall()
        for first, users, seqs, rowid in page:
            codes = np.frombuffer(users, dtype="<i8")
            hit = np.flatnonzero(codes == code)
            if not hit.size:
                continue
            found.append(_seqs_of(int(first), users, seqs)[hit])
            if postgres:
                cleared = codes.copy()
                cleared[hit] = _NONE
                cur.execute(
                    "UPDATE event_users SET users = %s WHERE tenant_ix = %s AND first_seq = %s",
                    (cleared.astype("<i8", copy=False).tobytes(), tenant_ix, first),
                )
            else:
                _clear_in_place(cur.connection, int(rowid), hit)
        if len(page) < _PAGE:
            break
        after = int(page[-1][0])
    if not found:
        return []
    seqs_list = np.unique(np.concatenate(found)).tolist()
    if postgres:
        cur.execute(
            "DELETE FROM events WHERE seq = ANY(%s::bigint[]) AND tenant_ix = %s "
            "AND user_ix = %s RETURNING session_ix",
            (seqs_list, tenant_ix, code),
        )
    else:
        cur.execute(
            "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?)) "
            "AND tenant_ix = ? AND user_ix = ? RETURNING session_ix",
            (orjson.dumps(seqs_list).decode(), tenant_ix, code),
        )
    return [None if row[0] is None else int(row[0]) for row in cur.fetchall()]


def _clear_in_place(db: Any, rowid: int, positions: Codes) -> None:
    """Set entries of a row's users to -1 through SQLite's incremental blob I/O: a page
    written per entry instead of the whole row (up to ~1 MiB, and its old pages zeroed)."""
    with db.blobopen("event_users", "users", rowid) as blob:
        for position in positions.tolist():
            blob.seek(position * 8)
            blob.write(_NONE_BYTES)


def drop_gone(conn: Connection, tenant_ix: int) -> int:
    """Drop the tenant's rows none of whose events can exist any more: those that end below
    the tenant's smallest remaining sequence number. Return how many.

    No event of the tenant lies below its first `event_users` row, so the search for the
    smallest remaining number starts there. It is one statement, so one snapshot: on
    PostgreSQL a concurrent append's events and its row are seen both or neither (and the
    lock keeps appends from merging into rows meanwhile).
    """
    cur = raw_cursor(conn)
    ph = placeholder(conn)
    if conn.dialect.name == "postgresql":
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK, tenant_ix))
    # `+` keeps the planners on the primary key's order (see `_EXPIRED` in events.py).
    cur.execute(
        f"DELETE FROM event_users WHERE tenant_ix = {ph} AND last_seq < coalesce(("
        "SELECT seq FROM events WHERE seq >= ("
        f"SELECT min(first_seq) FROM event_users WHERE tenant_ix = {ph}) "
        f"AND +tenant_ix = {ph} ORDER BY seq LIMIT 1), {2**63 - 1})",
        (tenant_ix, tenant_ix, tenant_ix),
    )
    return int(cur.rowcount)


def _seqs_of(first: int, users: bytes, seqs: bytes | None) -> Codes:
    """The sequence numbers of a row's entries."""
    if seqs is None:
        return np.arange(first, first + len(users) // 8, dtype=np.int64)
    return np.frombuffer(seqs, dtype="<i8").astype(np.int64)


def _seq_blob(seqs: Codes) -> bytes | None:
    """The `seqs` column of a row: None when the numbers are consecutive and increasing."""
    if len(seqs) <= 1 or bool((np.diff(seqs) == 1).all()):
        return None
    return seqs.astype("<i8", copy=False).tobytes()
