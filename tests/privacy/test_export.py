"""A person's export holds everything stored about them and what was inferred, and importing it
into an empty instance reproduces their events, profile, consent ledger and controls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from penchant.cli import app
from penchant.errors import Erased, InvalidInput, NotFound
from penchant.jobs.erase import erase
from penchant.jobs.export import EXPORT_FORMAT, export_user
from penchant.jobs.export_import import import_export
from penchant.jobs.store import settings_hasher, settings_store
from penchant.privacy.audit import AuditLog
from penchant.privacy.consent import read_preferences
from penchant.ranking import OnlineState
from penchant.schema import ConsentState, ControlKind, Event, EventContext, Item, User
from penchant.settings import Settings, load_settings
from penchant.store import ConsentRecord, Control, Store
from penchant.store.state import MemoryState
from penchant.types import Purpose

START = datetime(2026, 3, 1, 9, 30, 0, 250_000, tzinfo=UTC)
FAN = "fan"


def _world() -> tuple[list[Item], list[Event]]:
    """Items i0..i9 (category odd or even, provider p0..p2); `fan` takes only odd items,
    `other` only even ones, and an anonymous session views one item."""
    items = [
        Item(id=f"i{i}", categories=["odd" if i % 2 else "even"], provider=f"p{i % 3}")
        for i in range(10)
    ]
    events = [
        Event(
            event_id=f"{who}-{n}",
            user_id=who,
            session_id=f"{who}-s{n // 3}",
            item_id=f"i{i}",
            type="view",
            timestamp=START + timedelta(minutes=n),
        )
        for who, own in ((FAN, [1, 3, 5, 7, 9, 1]), ("other", [0, 2, 4, 6]))
        for n, i in enumerate(own)
    ]
    context = EventContext(request_id="r1", surface="home", position=2, attributes={"ab": "x"})
    events += [
        Event(event_id="fan-r", user_id=FAN, item_id="i3", type="rating", value=4.5,
              timestamp=START + timedelta(hours=1), context=context),
        Event(event_id="fan-d", user_id=FAN, item_id="i2", type="dismiss",
              timestamp=START + timedelta(hours=2)),
        # no event_id: bulk imports may store such rows
        Event(user_id=FAN, session_id="fan-s9", item_id="i9", type="purchase",
              timestamp=START + timedelta(hours=3)),
        Event(session_id="anon", item_id="i1", type="view", timestamp=START),
    ]  # fmt: skip
    return items, events


def _open(tmp_path: Path, name: str, url: str | None = None) -> tuple[Settings, Store]:
    folder = tmp_path / name
    settings = load_settings(folder, store={"url": url or f"sqlite:///{folder / 'penchant.db'}"})
    return settings, settings_store(settings)


def _seed(settings: Settings, store: Store) -> list[Event]:
    items, events = _world()
    tenant = settings.tenant
    store.catalog.upsert_items(tenant, items)
    store.events.append(tenant, events)
    consent = {Purpose.PERSONALIZATION: ConsentState(granted=True, at=START, source="banner")}
    store.catalog.upsert_users(
        tenant,
        [User(id=FAN, attributes={"plan": "pro", "age": 41}, consent=consent), User(id="other")],
    )
    store.consent.record(
        tenant,
        FAN,
        [
            ConsentRecord(Purpose.PERSONALIZATION, True, "v1", "banner", START),
            ConsentRecord(Purpose.ANALYTICS, False, "v1", "banner", START),
            ConsentRecord(Purpose.ANALYTICS, True, "v2", "settings", START + timedelta(days=1)),
        ],
    )
    store.consent.add_control(tenant, FAN, Control(ControlKind.PROVIDER, "p1", START))
    return [e for e in events if e.user_id == FAN]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    settings, store = _open(tmp_path, "source")
    _seed(settings, store)
    yield settings, store
    store.close()


def test_the_export_holds_every_stored_part_of_the_person_and_nobody_elses(
    tmp_path: Path, store_url: str
) -> None:
    settings, store = _open(tmp_path, "one", store_url)
    try:
        theirs = _seed(settings, store)
        state = MemoryState()
        OnlineState(state, "default").record(theirs)
        data = export_user(settings, store, state, "default", FAN)
    finally:
        store.close()

    assert data["format"] == EXPORT_FORMAT and data["user_id"] == FAN
    assert [e["event_id"] for e in data["events"]] == [e.event_id for e in theirs]
    assert {e["user_id"] for e in data["events"]} == {FAN}
    rating = next(e for e in data["events"] if e["event_id"] == "fan-r")
    assert rating == {
        "event_id": "fan-r",
        "user_id": FAN,
        "session_id": None,
        "item_id": "i3",
        "type": "rating",
        "value": 4.5,
        "timestamp": "2026-03-01T10:30:00.250000Z",
        "context": {
            "request_id": "r1",
            "surface": "home",
            "position": 2,
            "attributes": {"ab": "x"},
        },
    }
    assert data["profile"]["attributes"] == {"plan": "pro", "age": 41}
    assert data["consent"]["current"]["analytics"]["granted"] is True  # the newest entry wins
    assert data["consent"]["current"]["personalization"]["source"] == "banner"
    assert [c["version"] for c in data["consent"]["history"]] == ["v1", "v1", "v2"]
    assert data["controls"] == [
        {"kind": "provider", "value": "p1", "at": "2026-03-01T09:30:00.250000Z"}
    ]
    assert data["online_state"]["purchased"] == ["i9"]
    assert data["online_state"]["dismissed"] == ["i2"]
    assert data["online_state"]["recent"][0] == "i9"  # newest first


def test_inferred_interests_on_a_known_world(source: tuple[Settings, Store]) -> None:
    settings, store = source
    inferred = export_user(settings, store, MemoryState(), "default", FAN)["inferred"]

    # 8 interactions (6 views, a rating, a purchase; the dismissal is no interest), all odd
    assert inferred["interactions"] == 8
    assert inferred["top_categories"] == [{"category": "odd", "share": 1.0}]
    # providers of i1 i3 i5 i7 i9 i1 (views), i3 (rating), i9 (purchase): p0 4, p1 3, p2 1
    assert inferred["top_providers"] == [
        {"provider": "p0", "share": 0.5},
        {"provider": "p1", "share": 0.375},
        {"provider": "p2", "share": 0.125},
    ]
    assert inferred["segments"] == {"plan": "pro", "age": 41}
    assert inferred["model"] == {
        "version": None,
        "known": False,
        "history_items": 0,
        "factors": None,
    }
    assert inferred["bandit_contexts"] == [] and inferred["notes"]["bandit_contexts"]


def test_unknown_and_erased_ids_are_not_found_and_every_export_is_audited(
    source: tuple[Settings, Store],
) -> None:
    settings, store = source
    state = MemoryState()
    export_user(settings, store, state, "default", FAN, actor="k1")
    with pytest.raises(NotFound):
        export_user(settings, store, state, "default", "never-seen", actor="k1")
    with pytest.raises(NotFound):
        export_user(settings, store, state, "elsewhere", FAN, actor="k1")
    erase(settings, store, state, FAN)
    with pytest.raises(NotFound):
        export_user(settings, store, state, "default", FAN, actor="k1")

    audit = AuditLog(store.engine, settings_hasher(settings))
    entries = [e for e in audit.entries() if e.action == "user.export"]
    assert [e.outcome for e in reversed(entries)] == ["ok", "not_found", "not_found", "not_found"]
    assert {e.actor for e in entries} == {"k1"}
    assert entries[-1].target == audit.user("default", FAN)
    for entry in audit.entries():  # ids only as keyed hashes, never any of the payload
        text = " ".join([entry.target, entry.outcome, entry.actor])
        assert FAN not in text and "never-seen" not in text and "i3" not in text


def test_importing_an_export_into_an_empty_instance_reproduces_it(
    tmp_path: Path, source: tuple[Settings, Store], store_url: str
) -> None:
    settings, store = source
    first = export_user(settings, store, MemoryState(), "default", FAN)
    wire = orjson.loads(orjson.dumps(first))  # through JSON, as a file would carry it
    target_settings, target = _open(tmp_path, "target", store_url)
    try:
        report = import_export(target_settings, target, wire)
        again = export_user(target_settings, target, MemoryState(), "default", FAN)
        repeat = import_export(target_settings, target, wire)
        assert target.events.count("default") == len(first["events"]) + 1
    finally:
        target.close()

    assert (report.events, report.stored, report.consents, report.controls) == (9, 9, 3, 1)
    assert again["events"] == first["events"]
    for part in ("profile", "consent", "controls", "online_state"):
        assert again[part] == first[part], part
    # the same interests; the target has no catalog, so none of them is named
    assert again["inferred"]["interactions"] == first["inferred"]["interactions"] == 8
    assert again["inferred"]["top_categories"] == []
    # a second import adds nothing but the event without an id (it has no idempotency key)
    assert (repeat.stored, repeat.duplicates, repeat.consents, repeat.controls) == (1, 8, 0, 0)


def test_an_import_given_the_online_state_mirrors_the_persons_consent_and_controls(
    tmp_path: Path, source: tuple[Settings, Store]
) -> None:
    settings, store = source
    wire = orjson.loads(orjson.dumps(export_user(settings, store, MemoryState(), "default", FAN)))
    target_settings, target = _open(tmp_path, "target")
    state = MemoryState()
    try:
        import_export(target_settings, target, wire, state=state)
    finally:
        target.close()

    preferences = read_preferences(state, "default", FAN)
    assert preferences is not None
    assert preferences.consent == {"personalization": True, "analytics": True}
    assert preferences.providers == ("p1",)


def test_an_import_is_refused_whole_when_it_is_not_one_persons_export(
    tmp_path: Path, source: tuple[Settings, Store]
) -> None:
    settings, store = source
    data: dict[str, Any] = export_user(settings, store, MemoryState(), "default", FAN)
    target_settings, target = _open(tmp_path, "target")
    try:
        with pytest.raises(InvalidInput, match="format"):
            import_export(target_settings, target, {**data, "format": "other/1"})
        stranger = [*data["events"], {**data["events"][0], "event_id": "x", "user_id": "u9"}]
        with pytest.raises(InvalidInput, match="someone other"):
            import_export(target_settings, target, {**data, "events": stranger})
        broken = [*data["events"], {**data["events"][0], "type": "teleport"}]
        with pytest.raises(InvalidInput, match=r"events\.9\.type"):
            import_export(target_settings, target, {**data, "events": broken})
        assert target.events.count("default") == 0
        target.catalog.upsert_users("default", [User(id=FAN)])
        erase(target_settings, target, MemoryState(), FAN)
        with pytest.raises(Erased):
            import_export(target_settings, target, data)
    finally:
        target.close()


def test_the_cli_exports_to_a_file_and_imports_it_elsewhere(
    tmp_path: Path, source: tuple[Settings, Store]
) -> None:
    settings, _store = source
    runner = CliRunner()
    path = tmp_path / "fan.json"
    exported = runner.invoke(
        app, ["privacy", "export", FAN, "--output", str(path), "--data-dir", str(settings.data_dir)]
    )
    assert exported.exit_code == 0, exported.output
    imported = runner.invoke(
        app, ["privacy", "import", str(path), "--data-dir", str(tmp_path / "new"), "--json"]
    )
    assert imported.exit_code == 0, imported.output
    assert orjson.loads(imported.stdout)["stored"] == 9
    shown = runner.invoke(app, ["privacy", "export", FAN, "--data-dir", str(tmp_path / "new")])
    assert orjson.loads(shown.stdout)["events"] == orjson.loads(path.read_bytes())["events"]
