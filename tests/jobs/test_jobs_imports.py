"""The import jobs: formats, options over presets, default rejects file."""

from __future__ import annotations

from pathlib import Path

import pytest

from penchant.errors import InvalidInput
from penchant.jobs.imports import import_catalog_file, import_events, rejects_file
from penchant.settings import load_settings
from penchant.store import open_store


def test_options_override_the_preset(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data")
    path = tmp_path / "ratings.txt"
    path.write_text("userId;movieId;rating;timestamp;who\n1;2;3.5;1700000000000;9\n")
    store = open_store(settings.store_url)
    try:
        report = import_events(
            settings,
            store,
            path,
            format="movielens",
            delimiter="semicolon",
            timestamp_unit="ms",
            mapping={"who": "user_id"},
            event_type="like",
        )
        (event,) = next(store.events.scan("default"))
    finally:
        store.close()
    assert report.stored == 1 and report.catalog == {}  # no movies.csv beside it
    assert (event.user_id, event.item_id, event.type, event.value) == ("9", "2", "like", 3.5)
    assert event.timestamp.year == 2023


def test_rejects_go_to_the_data_directory_by_default(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data")
    path = tmp_path / "e.csv"
    path.write_text("user_id,type\nu1,nope\n")
    store = open_store(settings.store_url)
    try:
        report = import_events(settings, store, path)
    finally:
        store.close()
    assert report.rejects_path == str(rejects_file(settings, path))
    assert rejects_file(settings, path) == tmp_path / "data" / "rejects" / "e.csv.rejects.jsonl"


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("e.csv", {"delimiter": "::"}, "one character"),
        ("e.csv", {"format": "nope"}, "unknown format"),
        ("e.xyz", {}, "pass --format"),
        ("e.csv", {"with_catalog": True}, "has no catalog files"),
    ],
)
def test_bad_options(tmp_path: Path, name: str, kwargs: dict[str, object], message: str) -> None:
    settings = load_settings(tmp_path / "data")
    path = tmp_path / name
    path.write_text("user_id,type\nu1,view\n")
    store = open_store(settings.store_url)
    try:
        with pytest.raises(InvalidInput, match=message):
            import_events(settings, store, path, **kwargs)  # type: ignore[arg-type]
    finally:
        store.close()


def test_sequence_files_have_no_catalog(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data")
    path = tmp_path / "Beauty.txt"
    path.write_text("1 2 3\n")
    store = open_store(settings.store_url)
    try:
        with pytest.raises(InvalidInput, match="has no items files"):
            import_catalog_file(settings, store, path, "items", format="amazon-beauty")
    finally:
        store.close()
