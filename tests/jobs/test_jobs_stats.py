"""The stats job: counts and data quality."""

from __future__ import annotations

from pathlib import Path

from penchant.jobs.imports import import_catalog_file, import_events
from penchant.jobs.stats import stats
from penchant.settings import load_settings
from penchant.store import open_store


def test_stats_after_an_import(store_url: str, tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data")
    events = tmp_path / "e.csv"
    events.write_text(
        "user_id,session_id,item_id,type,timestamp\n"
        "u1,,i1,view,2024-01-01T00:00:00Z\n"
        "u1,,i2,click,2024-01-02T00:00:00Z\n"
        "u2,,i9,view,2024-01-03T00:00:00Z\n"
        ",s1,,view,2024-01-04T00:00:00Z\n"
    )
    items = tmp_path / "items.csv"
    items.write_text("id,title\ni1,One\ni2,Two\ni3,Three\n")
    store = open_store(store_url)
    try:
        import_catalog_file(settings, store, items, "items")
        import_events(settings, store, events)
        report = stats(store, "default")
    finally:
        store.close()

    assert {k: report[k] for k in ("events", "users", "items", "sessions")} == {
        "events": 4,
        "users": 2,
        "items": 4,  # i1, i2, i3 in the catalog and i9 only in events
        "sessions": 1,
    }
    assert report["events_unknown_item"] == 1 and report["unknown_items"] == 1
    assert report["events_without_item"] == 1
    assert report["by_type"] == {"view": 3, "click": 1}
    assert report["first_event"] == "2024-01-01T00:00:00+00:00"
    assert report["last_event"] == "2024-01-04T00:00:00+00:00"
