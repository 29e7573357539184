"""What an import file is: its format, the columns it offers and the digest of its bytes."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq

from penchant.errors import InvalidInput

SourceKind = Literal["csv", "jsonl", "parquet", "sequence"]

ENCODING_HINT = "pass the file's encoding with --encoding (e.g. latin-1)"


@dataclass(frozen=True)
class SourceFormat:
    """How the bytes of a file become records.

    Attributes:
        kind: `csv` (any single-character delimiter), `jsonl` (one JSON object a line),
            `parquet`, or `sequence` (`user item1 item2 ...` a line, in time order).
        delimiter: the field separator of `csv` and `sequence` files.
        header: whether the first line of a `csv` file names the columns.
        column_names: the column names of a `csv` file without a header.
        encoding: the text encoding of `csv` files.
        quote: whether `"` quotes fields in a `csv` file.
    """

    kind: SourceKind
    delimiter: str = ","
    header: bool = True
    column_names: tuple[str, ...] = field(default_factory=tuple)
    encoding: str = "utf8"
    quote: bool = True


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in blocks so memory stays flat."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def source_columns(path: Path, fmt: SourceFormat) -> list[str] | None:
    """The column names a file offers, from its header or schema.

    Returns:
        The names, or None for JSONL, whose lines may each have other keys.
    """
    if fmt.kind == "parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    if fmt.kind == "sequence":
        return ["user_id", "item_id", "timestamp"]
    if fmt.kind == "jsonl":
        return None
    if not fmt.header:
        return list(fmt.column_names)
    encoding = _python_encoding(fmt.encoding)
    encoding = "utf-8-sig" if encoding == "utf-8" else encoding  # a BOM is not a column name
    with path.open("rb") as handle:
        raw = handle.readline()
    try:
        first_line = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path.name}: the header is not {fmt.encoding}; {ENCODING_HINT}"
        ) from exc
    if fmt.quote:
        return next(csv.reader([first_line], delimiter=fmt.delimiter), [])
    return next(csv.reader([first_line], delimiter=fmt.delimiter, quoting=csv.QUOTE_NONE), [])


def _python_encoding(name: str) -> str:
    return {"utf8": "utf-8", "latin1": "latin-1"}.get(name.lower(), name)
