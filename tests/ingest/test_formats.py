"""Presets for known datasets, and catalog (item and user) files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from penchant.errors import InvalidInput
from penchant.ingest.catalog import file_rows, import_catalog
from penchant.ingest.formats import PRESETS, get_preset, guess_format
from penchant.ingest.readers import SEQUENCE_EPOCH
from penchant.ingest.rejects import Rejects
from penchant.ingest.source import SourceFormat
from penchant.jobs.imports import import_catalog_file, import_events
from penchant.settings import Settings, load_settings
from penchant.store import EventFilter, Store, open_store
from shared_data import need_dataset


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    yield opened
    opened.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path / "data")


def ml100k_sample(folder: Path) -> Path:
    """A three-line u.data with the u.item, u.genre and u.user files beside it."""
    folder.mkdir(exist_ok=True)
    (folder / "u.data").write_text(
        "1\t10\t4\t881250949\n2\t10\t5\t891717742\n1\t20\t1\t878887116\n"
    )
    genres = ["unknown", "Action", "Comedy", "Children's"]
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    (folder / "u.item").write_bytes(
        "10|Caf\xe9 (1995)|01-Jan-1995||http://example.org/10|0|1|0|1\n"
        "20|unknown||||1|0|0|0\n".encode("latin-1")
    )
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder / "u.data"


def test_movielens_100k_files_with_their_catalog(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    data = ml100k_sample(tmp_path / "ml")
    report = import_events(settings, store, data, format="movielens-100k")

    assert report.stored == 3
    assert report.catalog["items"]["stored"] == 2
    assert report.catalog["users"]["stored"] == 2
    cafe = store.catalog.get_item("default", "10")
    assert cafe is not None
    assert cafe.title == "Café (1995)"
    assert cafe.categories == ["Action", "Children's"]
    assert cafe.published_at == datetime(1995, 1, 1, tzinfo=UTC)
    assert cafe.attributes == {"imdb_url": "http://example.org/10"}
    unknown = store.catalog.get_item("default", "20")
    assert unknown is not None and unknown.categories == [] and unknown.published_at is None
    user = store.catalog.get_user("default", "2")
    assert user is not None
    assert user.attributes == {"age": 53, "gender": "F", "occupation": "other", "zip": "94043"}
    events = [e for b in store.events.scan("default") for e in b]
    assert {(e.user_id, e.item_id, e.type, e.value) for e in events} == {
        ("1", "10", "rating", 4.0),
        ("2", "10", "rating", 5.0),
        ("1", "20", "rating", 1.0),
    }


def test_no_catalog_when_asked(sqlite_store: Store, settings: Settings, tmp_path: Path) -> None:
    data = ml100k_sample(tmp_path / "ml")
    report = import_events(
        settings, sqlite_store, data, format="movielens-100k", with_catalog=False
    )
    assert report.catalog == {} and sqlite_store.catalog.get_item("default", "10") is None


def test_with_catalog_requires_the_files(
    sqlite_store: Store, settings: Settings, tmp_path: Path
) -> None:
    data = ml100k_sample(tmp_path / "ml")
    (tmp_path / "ml" / "u.user").unlink()
    with pytest.raises(InvalidInput, match=r"u\.user not found"):
        import_events(settings, sqlite_store, data, format="movielens-100k", with_catalog=True)
    assert sqlite_store.events.count("default") == 0


def test_sequence_lines_become_ordered_purchases(
    sqlite_store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "Beauty.txt"
    path.write_text("1 5 3 9\n2 3\n3\n4 7 7\n")
    report = import_events(settings, sqlite_store, path, format="amazon-beauty")

    assert report.stored == 6
    events = [e for b in sqlite_store.events.scan("default") for e in b]
    assert [(e.user_id, e.item_id, e.type) for e in events] == [
        ("1", "5", "purchase"),
        ("1", "3", "purchase"),
        ("1", "9", "purchase"),
        ("2", "3", "purchase"),
        ("4", "7", "purchase"),
        ("4", "7", "purchase"),
    ]
    stamps = [int(e.timestamp.timestamp()) for e in events]
    assert stamps == list(range(SEQUENCE_EPOCH, SEQUENCE_EPOCH + 6))


def test_item_file_with_mapping_lists_and_attributes(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "items.csv"
    path.write_text(
        "sku,title,categories,tags,price,published_at\n"
        "a1,Shoe,footwear|sport,red,59.5,2024-01-02T03:04:05Z\n"
        ",No id,,,1,\n"
        "a2,Hat,hats,,12,not a date\n"
        'a3,Scarf,"[""winter""]",,20,\n'
    )
    report = import_catalog_file(settings, store, path, "items", mapping={"sku": "id"})

    assert (report.rows_read, report.stored, report.rejected) == (4, 2, 2)
    shoe = store.catalog.get_item("default", "a1")
    assert shoe is not None
    assert shoe.categories == ["footwear", "sport"] and shoe.tags == ["red"]
    assert shoe.attributes == {"price": "59.5"}
    assert shoe.published_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    scarf = store.catalog.get_item("default", "a3")
    assert scarf is not None and scarf.categories == ["winter"]
    assert report.rejects_path is not None
    lines = [orjson.loads(x) for x in Path(report.rejects_path).read_bytes().splitlines()]
    assert [x["row"] for x in lines] == [2, 3]
    assert lines[0]["reasons"][0].startswith("id: ")
    assert lines[1]["reasons"][0].startswith("published_at: ")


def test_user_file_in_jsonl_keeps_nested_values(
    sqlite_store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "users.jsonl"
    rows = [
        {"user_id": "u1", "plan": "pro", "consent": {"personalization": {"granted": True}}},
        {"user_id": "u2", "attributes": {"langs": ["en", "fr"]}},
        "broken",
    ]
    path.write_text("\n".join(r if isinstance(r, str) else orjson.dumps(r).decode() for r in rows))
    report = import_catalog_file(settings, sqlite_store, path, "users")

    assert (report.stored, report.rejected) == (2, 1)
    u1 = sqlite_store.catalog.get_user("default", "u1")
    assert u1 is not None and u1.attributes == {"plan": "pro"}
    assert u1.consent["personalization"].granted is True  # type: ignore[index]
    u2 = sqlite_store.catalog.get_user("default", "u2")
    assert u2 is not None and u2.attributes == {"langs": ["en", "fr"]}


def test_catalog_rows_are_upserted_in_batches(sqlite_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("id,title\n" + "".join(f"i{i},Item {i}\n" for i in range(12_001)))
    read = file_rows(path, SourceFormat("csv"), {}, "items")
    sink = Rejects(tmp_path / "rejects.jsonl")
    report = import_catalog(sqlite_store.catalog, "default", "items", path, read(path, sink), sink)

    assert report.stored == 12_001
    assert sum(len(b) for b in sqlite_store.catalog.scan_items("default")) == 12_001


def test_formats_by_name() -> None:
    assert guess_format(Path("x.CSV")) == "csv"
    assert guess_format(Path("x.ndjson")) == "jsonl"
    assert guess_format(Path("x.parquet")) == "parquet"
    with pytest.raises(InvalidInput, match="pass --format"):
        guess_format(Path("u.data"))
    with pytest.raises(InvalidInput, match="movielens-100k"):
        get_preset("movielens-1m")
    assert {"csv", "tsv", "jsonl", "parquet", "movielens-100k", "movielens"} < set(PRESETS)


# -- the real datasets (in ../shared/datasets, not in the repository) ---------------------------
def test_movielens_100k(store: Store, settings: Settings) -> None:
    folder = need_dataset("movielens-100k")
    report = import_events(settings, store, folder / "u.data", format="movielens-100k")

    quality = store.quality("default")
    assert (report.stored, report.rejected) == (100_000, 0)
    assert (quality.events, quality.users, quality.items) == (100_000, 943, 1_682)
    assert (quality.catalog_items, quality.catalog_users, quality.unknown_items) == (1682, 943, 0)
    assert quality.by_type == {"rating": 100_000}
    toy_story = store.catalog.get_item("default", "1")
    assert toy_story is not None and toy_story.title == "Toy Story (1995)"
    assert toy_story.categories == ["Animation", "Children's", "Comedy"]


def test_movielens_latest_small(store: Store, settings: Settings) -> None:
    folder = need_dataset("movielens-latest-small")
    report = import_events(settings, store, folder / "ratings.csv", format="movielens")

    quality = store.quality("default")
    assert (report.stored, report.rejected) == (100_836, 0)
    assert (quality.events, quality.users, quality.catalog_items) == (100_836, 610, 9_742)
    assert quality.unknown_items == 0
    step_brothers = store.catalog.get_item("default", "60756")
    assert step_brothers is not None
    assert {"funny", "Highly quotable", "will ferrell"} <= set(step_brothers.tags)
    assert step_brothers.attributes == {"year": 2008}
    assert step_brothers.categories == ["Comedy"]
    tagged = sum(1 for b in store.catalog.scan_items("default") for i in b if i.tags)
    assert tagged == 1_572  # movies with at least one tag in tags.csv


def test_amazon_beauty(sqlite_store: Store, settings: Settings) -> None:
    folder = need_dataset("amazon-beauty-seq")
    report = import_events(settings, sqlite_store, folder / "Beauty.txt", format="amazon-beauty")

    quality = sqlite_store.quality("default")
    assert (report.stored, report.rejected) == (198_502, 0)
    assert (quality.events, quality.users, quality.items) == (198_502, 22_363, 12_101)
    assert quality.by_type == {"purchase": 198_502}
    first_line = (folder / "Beauty.txt").read_text().split("\n", 1)[0].split()
    user, items = first_line[0], first_line[1:]
    events = [e for b in sqlite_store.events.scan("default", EventFilter(user_id=user)) for e in b]
    ordered = sorted(events, key=lambda e: e.timestamp)
    assert [e.item_id for e in ordered] == items


def test_a_broken_json_list_is_a_reject_not_a_crash(
    sqlite_store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "items.csv"
    path.write_text('id,categories\na,"[""shoes"""\nb,hats\n')
    report = import_catalog_file(settings, sqlite_store, path, "items")

    assert (report.stored, report.rejected) == (1, 1)


def test_catalog_mapping_to_an_unknown_field_is_refused(
    sqlite_store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "items.csv"
    path.write_text("sku,name\na,Shoe\n")
    with pytest.raises(InvalidInput, match="field must be one of"):
        import_catalog_file(settings, sqlite_store, path, "items", mapping={"name": "label"})
