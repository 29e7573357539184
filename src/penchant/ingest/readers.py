"""Streaming readers: files become row-numbered Arrow chunks of typed columns."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq
from pyarrow import csv as pacsv

from penchant.errors import InvalidInput
from penchant.ingest.source import ENCODING_HINT, SourceFormat

#: Name of the column every reader adds: the 1-based number of the record in the file.
ROW = "__row"

#: Called for a record that cannot be parsed at all: (row number or None, raw text, reason).
OnMalformed = Callable[[int | None, str, str], None]

# Arrow reads about 36 blocks ahead, so the block size bounds the memory of a read.
_BLOCK_BYTES = 2 << 20


def read_chunks(
    path: Path,
    fmt: SourceFormat,
    columns: list[str],
    chunk_rows: int,
    on_malformed: OnMalformed,
) -> Iterator[tuple[pa.Table, int]]:
    """Stream a file as tables of exactly `chunk_rows` records (the last may be shorter).

    Text columns come back as strings; Parquet and JSON columns keep their types. Every table
    has a `ROW` column. Chunk boundaries depend only on the file and `chunk_rows`, so the same
    file always splits the same way.

    Args:
        path: the file.
        fmt: how to parse it.
        columns: the source columns to read (others are not decoded).
        chunk_rows: records per chunk.
        on_malformed: receives records that cannot be parsed; reading goes on.

    Yields:
        (chunk, bytes of the file consumed so far, for progress).
    """
    readers = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet, "sequence": _sequence}
    pending: list[pa.Table] = []
    held = 0
    position = 0
    for table, position in readers[fmt.kind](path, fmt, columns, on_malformed):
        pending.append(table)
        held += table.num_rows
        while held >= chunk_rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, chunk_rows).combine_chunks(), position
            rest = whole.slice(chunk_rows)
            pending, held = [rest], rest.num_rows
    if held:
        yield pa.concat_tables(pending).combine_chunks(), position


class _RowNumbers:
    """Numbers records 1, 2, ... around the malformed records the parser skipped."""

    def __init__(self) -> None:
        self.malformed: list[int] = []
        self.seen = 0

    def next_batch(self, n: int) -> pa.Array:
        index = np.arange(self.seen, self.seen + n, dtype=np.int64)
        self.seen += n
        if self.malformed:
            bad = np.asarray(sorted(self.malformed), dtype=np.int64)
            # Good records before each malformed one; a malformed row shifts all after it.
            before = bad - 1 - np.arange(len(bad), dtype=np.int64)
            index = index + np.searchsorted(before, index, side="right")
        return pa.array(index + 1)


def _csv(
    path: Path, fmt: SourceFormat, columns: list[str], on_malformed: OnMalformed
) -> Iterator[tuple[pa.Table, int]]:
    rows = _RowNumbers()
    header_lines = 1 if fmt.header else 0

    def handler(row: pacsv.InvalidRow) -> str:
        number = None if row.number is None else row.number - header_lines
        if number is not None:
            rows.malformed.append(number)
        reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
        on_malformed(number, row.text, reason)
        return "skip"

    read = pacsv.ReadOptions(
        block_size=_BLOCK_BYTES,
        use_threads=False,  # single-threaded parsing numbers malformed rows exactly
        encoding=fmt.encoding,
        column_names=None if fmt.header else list(fmt.column_names),
    )
    parse = pacsv.ParseOptions(
        delimiter=fmt.delimiter,
        quote_char='"' if fmt.quote else False,
        ignore_empty_lines=False,
        invalid_row_handler=handler,
    )
    convert = pacsv.ConvertOptions(
        # Bytes first: a stray invalid UTF-8 byte then rejects its row, not the whole import.
        column_types=dict.fromkeys(columns, pa.binary()),
        include_columns=columns,
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    with pa.OSFile(str(path), "rb") as raw:
        try:
            reader = pacsv.open_csv(
                raw, read_options=read, parse_options=parse, convert_options=convert
            )
            for batch in reader:
                table = pa.Table.from_batches([batch])
                table = table.append_column(ROW, rows.next_batch(table.num_rows))
                yield _utf8(table, on_malformed), raw.tell()
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            hint = f"; {ENCODING_HINT}" if "UTF8" in str(exc) or "decode" in str(exc) else ""
            raise InvalidInput(f"{path.name}: cannot parse as {fmt.kind}: {exc}{hint}") from exc


def _utf8(table: pa.Table, on_malformed: OnMalformed) -> pa.Table:
    """Binary columns as text; rows with bytes that are not UTF-8 go to `on_malformed`."""
    bad = np.zeros(table.num_rows, dtype=bool)
    columns: dict[str, pa.Array] = {}
    for name in table.column_names:
        column = table.column(name)
        if name == ROW:
            columns[name] = column
            continue
        try:
            columns[name] = pc.cast(column, pa.string())
        except pa.ArrowInvalid:  # the slow path, for the rare chunk with broken bytes
            texts: list[str | None] = []
            for index, value in enumerate(column.to_pylist()):
                try:
                    texts.append(None if value is None else value.decode("utf-8"))
                except UnicodeDecodeError:
                    texts.append(None)
                    bad[index] = True
            columns[name] = pa.array(texts, pa.string())
    if not bad.any():
        return pa.table(columns)
    for row in table.filter(pa.array(bad)).to_pylist():
        number = row.pop(ROW)
        raw = ", ".join(
            f"{k}={'' if v is None else v.decode('utf-8', 'replace')}" for k, v in row.items()
        )
        on_malformed(number, raw, "not valid UTF-8; pass the file's encoding with --encoding")
    return pa.table(columns).filter(pa.array(~bad))


def _jsonl(
    path: Path, fmt: SourceFormat, columns: list[str], on_malformed: OnMalformed
) -> Iterator[tuple[pa.Table, int]]:
    line_no = 0
    with path.open("rb") as handle:
        while lines := list(itertools.islice(handle, 65_536)):
            first = line_no + 1
            line_no += len(lines)
            table = _jsonl_fast(lines, columns)
            if table is None:
                table = _jsonl_slow(lines, columns, first, on_malformed)
            else:
                table = table.append_column(ROW, pa.array(np.arange(first, line_no + 1)))
            yield table, handle.tell()


def _jsonl_fast(lines: list[bytes], columns: list[str]) -> pa.Table | None:
    """Arrow's JSON parser on a block of clean lines; None when the block needs the slow path."""
    if any(not line.strip() for line in lines):
        return None  # Arrow skips blank lines, which would shift the row numbers
    try:
        table = pajson.read_json(
            io.BytesIO(b"".join(lines if lines[-1].endswith(b"\n") else [*lines, b"\n"])),
            read_options=pajson.ReadOptions(use_threads=True, block_size=_BLOCK_BYTES),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(lines):
        return None
    out = {}
    for name in columns:
        if name not in table.column_names:
            out[name] = pa.nulls(table.num_rows, pa.string())
            continue
        column = table.column(name)
        if pa.types.is_struct(column.type) or pa.types.is_list(column.type):
            return None  # nested values: keep their JSON text, from the slow path
        out[name] = column
    return pa.table(out)


def _jsonl_slow(
    lines: list[bytes], columns: list[str], first: int, on_malformed: OnMalformed
) -> pa.Table:
    """Line by line: bad lines become rejects, values become their JSON text when not scalar."""
    values: dict[str, list[str | None]] = {name: [] for name in columns}
    numbers: list[int] = []
    for offset, line in enumerate(lines):
        text = line.strip()
        try:
            record = orjson.loads(text) if text else None
        except orjson.JSONDecodeError as exc:
            on_malformed(first + offset, line.decode("utf-8", "replace").rstrip(), str(exc))
            continue
        if not isinstance(record, dict):
            reason = "empty line" if record is None else "not a JSON object"
            on_malformed(first + offset, line.decode("utf-8", "replace").rstrip(), reason)
            continue
        numbers.append(first + offset)
        for name in columns:
            values[name].append(_scalar_text(record.get(name)))
    table = pa.table({name: pa.array(v, type=pa.string()) for name, v in values.items()})
    return table.append_column(ROW, pa.array(numbers, type=pa.int64()))


def _scalar_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()


def _parquet(
    path: Path, fmt: SourceFormat, columns: list[str], on_malformed: OnMalformed
) -> Iterator[tuple[pa.Table, int]]:
    parquet = pq.ParquetFile(path)
    total = max(parquet.metadata.num_rows, 1)
    size = path.stat().st_size
    done = 0
    for batch in parquet.iter_batches(batch_size=65_536, columns=columns):
        table = pa.Table.from_batches([batch])
        rows = pa.array(np.arange(done + 1, done + table.num_rows + 1))
        done += table.num_rows
        yield table.append_column(ROW, rows), size * done // total


#: Start of the synthetic clock of `sequence` files: 2014-01-01T00:00:00Z.
SEQUENCE_EPOCH = 1_388_534_400


def _sequence(
    path: Path, fmt: SourceFormat, columns: list[str], on_malformed: OnMalformed
) -> Iterator[tuple[pa.Table, int]]:
    """`user item1 item2 ...` lines: one record per item, one second apart in file order."""
    line_no = 0
    clock = SEQUENCE_EPOCH
    with path.open("rb") as handle:
        while lines := list(itertools.islice(handle, 16_384)):
            numbers = np.arange(line_no + 1, line_no + len(lines) + 1, dtype=np.int64)
            line_no += len(lines)
            text_lines = pa.array([ln.decode(fmt.encoding) for ln in lines], pa.string())
            tokens = pc.split_pattern(pc.utf8_trim_whitespace(text_lines), fmt.delimiter)
            lengths = pc.list_value_length(tokens).to_numpy(zero_copy_only=False)
            owner = np.repeat(np.arange(len(lines)), lengths - 1)
            n = len(owner)
            table = pa.table(
                {
                    "user_id": pc.take(pc.list_element(tokens, 0), pa.array(owner)),
                    "item_id": pc.list_flatten(pc.list_slice(tokens, 1)),
                    "timestamp": pa.array(np.arange(clock, clock + n, dtype=np.int64)),
                    ROW: pa.array(numbers[owner]),
                }
            )
            clock += n
            yield (
                table.select([c for c in table.column_names if c in columns or c == ROW]),
                (handle.tell()),
            )
