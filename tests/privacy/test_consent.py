"""Consent per purpose and user controls: the ledger and controls on each store, who training
and engagement reports leave out, and a profile reset that keeps them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from penchant.errors import Erased
from penchant.jobs import dp_report
from penchant.jobs.consent import without_consent_to
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import opened_store
from penchant.jobs.train import train
from penchant.privacy.consent import Preferences, WithoutConsent
from penchant.privacy.dp import bounded_counts
from penchant.schema import ControlKind, Event, User
from penchant.settings import Settings, load_settings
from penchant.store import ConsentRecord, Control, Store, open_store
from penchant.types import Purpose

T0 = datetime(2026, 3, 1, tzinfo=UTC)
P, A = Purpose.PERSONALIZATION, Purpose.ANALYTICS


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url, tombstone_hash=lambda tenant, user: f"{tenant}/{user}")
    yield opened
    opened.close()


def answer(purpose: Purpose, granted: bool, version: str = "v1") -> ConsentRecord:
    return ConsentRecord(purpose, granted, version, "settings-page")


def test_the_ledger_keeps_every_answer_and_the_newest_counts(store: Store) -> None:
    store.consent.record("t", "u1", [answer(P, True, "v1")])
    store.consent.record("t", "u1", [answer(A, False), answer(P, False, "v2")])
    store.consent.record("t", "u2", [answer(P, True)])

    history = store.consent.history("t", "u1")
    assert [(r.purpose, r.granted, r.version) for r in history] == [
        (P, True, "v1"),
        (A, False, "v1"),
        (P, False, "v2"),
    ]
    assert all(r.source == "settings-page" and r.at is not None for r in history)
    assert history[0].at is not None and history[0].at <= datetime.now(UTC)
    current = store.consent.choices("t", "u1").consent
    assert {p: (r.granted, r.version) for p, r in current.items()} == {
        P: (False, "v2"),
        A: (False, "v1"),
    }
    assert store.consent.answers("t", P) == {"u1": False, "u2": True}
    assert store.consent.answers("t", Purpose.ADVERTISING) == {}
    assert store.consent.history("other", "u1") == []  # tenants never mix
    imported = ConsentRecord(A, True, "v0", "import", at=T0)  # another instance's time
    store.consent.record("t", "u3", [imported])
    assert store.consent.history("t", "u3") == [imported]
    assert store.consent.answers("other", P) == {}


def test_controls_are_a_set_per_person(store: Store) -> None:
    item = Control(ControlKind.ITEM, "i3")
    first, created = store.consent.add_control("t", "u1", item)
    again, created_again = store.consent.add_control("t", "u1", item)
    assert created and not created_again and again.at == first.at
    store.consent.add_control("t", "u1", Control(ControlKind.CATEGORY, "odd"))
    store.consent.add_control("t", "u2", Control(ControlKind.PROVIDER, "acme"))

    mine = store.consent.choices("t", "u1").controls
    assert [(c.kind, c.value) for c in mine] == [
        (ControlKind.ITEM, "i3"),
        (ControlKind.CATEGORY, "odd"),
    ]
    assert set(store.consent.everyone("t")) == {"u1", "u2"}
    assert store.consent.remove_control("t", "u1", ControlKind.ITEM, "i3")
    assert not store.consent.remove_control("t", "u1", ControlKind.ITEM, "i3")
    assert not store.consent.remove_control("other", "u1", ControlKind.CATEGORY, "odd")
    assert [c.value for c in store.consent.choices("t", "u1").controls] == ["odd"]


def test_an_erased_person_gets_no_consent_or_control(store: Store) -> None:
    store.consent.record("t", "u1", [answer(P, True)])
    rows = store.privacy.erase_user(
        "t", "u1", job_id="er_1", actor="test", rebuild_due_at=datetime.now(UTC)
    )
    assert rows.counts["consents"] == 1
    with pytest.raises(Erased):
        store.consent.record("t", "u1", [answer(P, True)])
    with pytest.raises(Erased):
        store.consent.add_control("t", "u1", Control(ControlKind.ITEM, "i1"))
    assert store.consent.history("t", "u1") == []


def test_a_reset_keeps_the_person_their_consent_and_controls(store: Store) -> None:
    store.catalog.upsert_users("t", [User(id="u1", attributes={"plan": "pro"})])
    store.consent.record("t", "u1", [answer(P, True)])
    store.consent.add_control("t", "u1", Control(ControlKind.CATEGORY, "odd"))
    store.events.append("t", [Event(user_id="u1", item_id="i1", type="view", timestamp=T0)])

    rows = store.privacy.erase_user(
        "t", "u1", job_id="rs_1", actor="test", rebuild_due_at=datetime.now(UTC), reset=True
    )
    assert rows.counts["events"] == 1
    assert not {"profile", "consents", "controls"} & set(rows.counts)
    assert len(store.consent.history("t", "u1")) == 1
    assert len(store.consent.choices("t", "u1").controls) == 1
    assert store.catalog.get_user("t", "u1") is not None
    assert store.privacy.is_erased("t", ["u1"]) == set()  # no tombstone
    ack = store.events.append("t", [Event(user_id="u1", item_id="i2", type="view")])
    assert ack.stored == 1 and ack.refused == ()


def test_who_is_left_out_by_default_and_by_answer() -> None:
    granted = WithoutConsent(P, True, granted=frozenset({"u1"}), denied=frozenset({"u2"}))
    assert "u2" in granted and "u1" not in granted and "u3" not in granted
    denied = WithoutConsent(P, False, granted=frozenset({"u1"}), denied=frozenset({"u2"}))
    assert "u2" in denied and "u1" not in denied and "u3" in denied
    assert "u1" in denied.plus(["u1"])

    users = pa.array(["u1", "u2", None, "u3", "u1"]).dictionary_encode()
    assert granted.rows(users).to_pylist() == [False, True, False, False, False]
    assert denied.rows(users).to_pylist() == [False, True, False, True, False]
    assert denied.rows(pa.array(["u3", None])).to_pylist() == [True, False]
    table = pa.table({"user_id": users, "n": list(range(5))})
    left: set[str] = set()
    kept = pa.concat_tables(denied.filter([table], left))
    assert kept.column("n").to_pylist() == [0, 2, 4] and left == {"u2", "u3"}


def test_preferences_round_trip_through_their_state_form() -> None:
    prefs = Preferences({"personalization": False}, ("odd",), ("acme",), ("i3", "i4"))
    assert Preferences.decode(prefs.encode()) == prefs
    assert not prefs.allows(P, True) and prefs.allows(A, True) and not prefs.allows(A, False)
    assert Preferences().empty and not Preferences({"analytics": True}).empty


def _training_world(settings: Settings) -> None:
    """40 users over 12 items; each views 6 items."""
    events = [
        Event(
            event_id=f"e{u}-{n}",
            user_id=f"u{u}",
            item_id=f"i{(u + n) % 12}",
            type="view",
            timestamp=T0 + timedelta(minutes=u * 10 + n),
        )
        for u in range(40)
        for n in range(6)
    ]
    with opened_store(settings) as store:
        store.events.append(settings.tenant, events)
        store.consent.record(settings.tenant, "u0", [answer(P, False)])
        store.consent.record(settings.tenant, "u1", [answer(P, True), answer(P, False, "v2")])
        for u in range(2, 12):
            store.consent.record(settings.tenant, f"u{u}", [answer(P, True)])
        store.consent.record(settings.tenant, "u39", [answer(A, False)])  # not this purpose


@pytest.mark.parametrize(("default", "excluded"), [("granted", 2), ("denied", 30)])
def test_training_leaves_out_people_without_personalization_consent(
    tmp_path: Path, default: str, excluded: int
) -> None:
    settings = load_settings(tmp_path, privacy={"consent_default": default})
    _training_world(settings)
    with opened_store(settings) as store:
        result = train(settings, store, models=["popular", "itemknn"])

    assert result.manifest["consent"] == {
        "purpose": "personalization",
        "default": default,
        "excluded_users": excluded,
    }
    trained = {str(u) for u in ModelRegistry.of(settings).load().models["itemknn"].user_ids_}
    assert not {"u0", "u1"} & trained  # withdrawn (u1 after a first grant)
    assert {f"u{u}" for u in range(2, 12)} <= trained  # granted
    assert ("u39" in trained) is (default == "granted")  # never asked about personalization
    assert result.manifest["data"]["users"] == 40 - excluded


def test_analytics_denial_leaves_a_person_out_of_engagement_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(tmp_path)
    with opened_store(settings) as store:
        store.catalog.upsert_users(
            "default", [User(id=f"u{n}", attributes={"plan": "free"}) for n in range(3)]
        )
        clicks = [Event(user_id=f"u{n}", type="click", session_id="s") for n in range(3)]
        store.events.append("default", clicks)
        store.consent.record("default", "u1", [answer(A, False), answer(P, True)])
        store.consent.record("default", "u2", [answer(P, False)])  # another purpose

        without = without_consent_to(settings, store, "default", A)
        (free,) = bounded_counts(store, "default", by="plan", exclude=without)
        (everyone,) = bounded_counts(store, "default", by="plan")
    assert (free.users, free.clicks) == (2, 2) and (everyone.users, everyone.clicks) == (3, 3)

    seen: dict[str, Any] = {}
    real = dp_report.release_engagement

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(dp_report, "release_engagement", spy)
    dp_report.engagement_report(settings, "default", by="plan", exclude=["u0"])
    assert "u1" in seen["exclude"] and "u0" in seen["exclude"]  # the ledger, and the caller's
    assert "u2" not in seen["exclude"]
