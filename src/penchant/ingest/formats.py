"""Import presets (`--format`) for plain files and known datasets."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from penchant.errors import InvalidInput
from penchant.ingest.bulk import EventSpec
from penchant.ingest.catalog import CatalogRow, RowReader, malformed_to, plain_rows
from penchant.ingest.readers import OnMalformed
from penchant.ingest.rejects import Rejects
from penchant.ingest.source import SourceFormat

_MAX_TAGS = 200


@dataclass(frozen=True)
class Preset:
    """How to import one kind of file.

    Attributes:
        name: the `--format` value.
        description: one line for `--help` and the docs.
        events: how to read an event file of this format.
        events_file: the event file's name in a dataset folder (for commands that take the
            folder), or None for plain formats.
        items_file: the item file that sits beside such an event file, imported with it.
        users_file: the user file that sits beside such an event file, imported with it.
        items: reads an item file of this format (None: use the generic file reader).
        users: reads a user file of this format (None: use the generic file reader).
    """

    name: str
    description: str
    events: EventSpec
    events_file: str | None = None
    items_file: str | None = None
    users_file: str | None = None
    items: RowReader | None = None
    users: RowReader | None = None


def guess_format(path: Path) -> str:
    """The plain format of a file from its name: csv, tsv, jsonl or parquet."""
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
    formats.update({".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"})
    if suffix not in formats:
        raise InvalidInput(f"{path.name}: cannot tell the format from the name; pass --format")
    return formats[suffix]


def get_preset(name: str) -> Preset:
    """The preset of a `--format` name.

    Raises:
        InvalidInput: no such preset.
    """
    if name not in PRESETS:
        raise InvalidInput(f"unknown format {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


# -- presets for known datasets ---------------------------------------------------------------
def _ml100k_items(path: Path, rejects: Rejects) -> Iterator[CatalogRow]:
    """u.item: `id|title|release date|video date|IMDb URL|19 genre flags`, latin-1."""
    genre_file = path.parent / "u.genre"
    if not genre_file.is_file():
        raise InvalidInput(f"{genre_file}: needed to name the genres of {path.name}")
    genres: dict[int, str] = {}
    for line in genre_file.read_text(encoding="latin-1").splitlines():
        if "|" in line:
            name, index = line.rsplit("|", 1)
            genres[int(index)] = name
    flags = tuple(f"g{i}" for i in range(len(genres)))
    source = SourceFormat(
        "csv",
        delimiter="|",
        header=False,
        column_names=("id", "title", "released", "video", "url", *flags),
        encoding="latin1",
        quote=False,
    )
    for number, row in plain_rows(path, source, malformed_to(rejects)):
        released = row["released"]
        yield (
            number,
            {
                "id": row["id"],
                "title": row["title"],
                # The first flag is "unknown": no genre, rather than a genre called unknown.
                "categories": [genres[i] for i in range(1, len(genres)) if row[f"g{i}"] == "1"],
                "published_at": datetime.strptime(released, "%d-%b-%Y").replace(tzinfo=UTC)
                if released
                else None,
                "attributes": {"imdb_url": row["url"]} if row["url"] else {},
            },
        )


def _ml100k_users(path: Path, rejects: Rejects) -> Iterator[CatalogRow]:
    """u.user: `id|age|gender|occupation|zip`."""
    names = ("id", "age", "gender", "occupation", "zip")
    source = SourceFormat("csv", delimiter="|", header=False, column_names=names, quote=False)
    for number, row in plain_rows(path, source, malformed_to(rejects)):
        age = row.pop("age")
        attributes = {k: v for k, v in row.items() if k != "id" and v is not None}
        if age is not None and age.isdigit():
            attributes["age"] = int(age)
        yield number, {"id": row["id"], "attributes": attributes}


_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _movielens_items(path: Path, rejects: Rejects) -> Iterator[CatalogRow]:
    """movies.csv `movieId,title,genres`, with the distinct tags of tags.csv beside it."""
    tags = _movielens_tags(path.parent / "tags.csv")
    for number, row in plain_rows(path, SourceFormat("csv"), malformed_to(rejects)):
        genres = row["genres"] or ""
        year = _YEAR.search(row["title"] or "")
        yield (
            number,
            {
                "id": row["movieId"],
                "title": row["title"],
                "categories": [] if genres.startswith("(no genres") else genres.split("|"),
                "tags": tags.get(row["movieId"], []),
                "attributes": {"year": int(year.group(1))} if year else {},
            },
        )


def _movielens_tags(path: Path) -> dict[str, list[str]]:
    """Distinct tags per movie, most applied first (case-insensitive), at most 200 each."""
    if not path.is_file():
        return {}
    counts: dict[str, Counter[str]] = {}
    spelling: dict[str, str] = {}
    # Tags only decorate items: a malformed tag line is skipped rather than reported.
    skip: OnMalformed = lambda row, raw, why: None  # noqa: E731
    for _, row in plain_rows(path, SourceFormat("csv"), skip, ["movieId", "tag"]):
        tag = (row["tag"] or "").strip()
        if row["movieId"] is None or not tag or len(tag) > 256:
            continue
        key = tag.lower()
        spelling.setdefault(key, tag)
        counts.setdefault(row["movieId"], Counter())[key] += 1
    return {
        movie: [spelling[key] for key, _ in counter.most_common(_MAX_TAGS)]
        for movie, counter in counts.items()
    }


def _plain(name: str, source: SourceFormat, description: str) -> Preset:
    return Preset(name, description, EventSpec(source))


PRESETS: dict[str, Preset] = {
    "csv": _plain("csv", SourceFormat("csv"), "comma-separated with a header row"),
    "tsv": _plain("tsv", SourceFormat("csv", delimiter="\t"), "tab-separated with a header"),
    "jsonl": _plain("jsonl", SourceFormat("jsonl"), "one JSON object a line"),
    "parquet": _plain("parquet", SourceFormat("parquet"), "Apache Parquet"),
    "movielens-100k": Preset(
        "movielens-100k",
        "MovieLens 100K u.data (user item rating unix-seconds, tab-separated); "
        "u.item, u.genre and u.user beside it give the catalog",
        EventSpec(
            SourceFormat(
                "csv",
                delimiter="\t",
                header=False,
                column_names=("user_id", "item_id", "value", "timestamp"),
                quote=False,
            ),
            event_type="rating",
            timestamp_unit="s",
        ),
        events_file="u.data",
        items_file="u.item",
        users_file="u.user",
        items=_ml100k_items,
        users=_ml100k_users,
    ),
    "movielens": Preset(
        "movielens",
        "MovieLens latest ratings.csv (userId,movieId,rating,timestamp); movies.csv and "
        "tags.csv beside it give the items and their tags",
        EventSpec(
            SourceFormat("csv"),
            mapping={
                "userId": "user_id",
                "movieId": "item_id",
                "rating": "value",
                "timestamp": "timestamp",
            },
            event_type="rating",
            timestamp_unit="s",
        ),
        events_file="ratings.csv",
        items_file="movies.csv",
        items=_movielens_items,
    ),
    "amazon-beauty": Preset(
        "amazon-beauty",
        "Amazon Beauty sequences (`user item1 item2 ...` a line, oldest first) as purchase "
        "events one second apart from 2014-01-01, in file order (the file has no times)",
        EventSpec(SourceFormat("sequence", delimiter=" "), event_type="purchase"),
        events_file="Beauty.txt",
    ),
}
