"""The rejects file of an import: the rows that failed, with their values and reasons."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson


class Rejects:
    """A rejects file (JSONL), created on the first rejected row, readable by its owner only.

    Each line is `{"row": N, "values": {column: raw value}, "reasons": [...]}`, where N is
    the 1-based number of the record in the file (the header line is not a record).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[bytes] | None = None

    def write(self, row: int | None, values: Mapping[str, Any], reasons: Sequence[str]) -> None:
        """Record one rejected row: its number in the file, its raw values and why."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._file = os.fdopen(fd, "wb")
        record = {"row": row, "values": dict(values), "reasons": list(reasons)}
        self._file.write(orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def close(self) -> None:
        """Close the file, if it was opened."""
        if self._file is not None:
            self._file.close()
            self._file = None
