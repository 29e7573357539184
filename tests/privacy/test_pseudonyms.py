"""Pseudonymization: keyed hashes in place of people's ids, fixed per store, from the CLI."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from penchant.cli.app import app
from penchant.errors import ConfigError
from penchant.jobs.store import settings_pseudonyms, settings_store
from penchant.privacy.hashing import Hasher
from penchant.privacy.pseudonyms import PREFIX, Pseudonyms
from penchant.schema import Event, User
from penchant.settings import Settings, load_settings
from penchant.store import EventFilter
from penchant.store.sql.tables import metadata

SECRET = bytes(range(32))
MARKER = "zq9alias"
runner = CliRunner()


def test_a_pseudonym_is_an_hmac_of_purpose_tenant_and_id() -> None:
    pseudonyms = Pseudonyms(Hasher(SECRET))

    alias = pseudonyms.user("shop", "alice@example.com")

    # recomputed here from the definition, with the standard library
    digest = hmac.new(SECRET, b"pseudonym\x00shop\x00alice@example.com", hashlib.sha256)
    assert alias == PREFIX + digest.hexdigest()[:32]
    assert pseudonyms.user("shop", "alice@example.com") == alias  # stable
    assert pseudonyms.user("news", "alice@example.com") != alias  # tenants apart
    assert Pseudonyms(Hasher(bytes(32))).user("shop", "alice@example.com") != alias


def test_off_keeps_ids_as_given() -> None:
    pseudonyms = Pseudonyms(None)
    event = Event(user_id="alice", item_id="i1", type="view")

    assert not pseudonyms.enabled
    assert pseudonyms.user("t", "alice") == "alice"
    assert pseudonyms.events("t", [event]) == [event]
    column = pa.array(["alice", None])
    assert pseudonyms.column("t", column).equals(column)


def test_a_column_is_mapped_as_each_id_is() -> None:
    pseudonyms = Pseudonyms(Hasher(SECRET))
    ids = ["a", None, "b", "a", "c", None]

    mapped = pseudonyms.column("t", pa.chunked_array([ids[:3], ids[3:]]))

    assert mapped.to_pylist() == [None if i is None else pseudonyms.user("t", i) for i in ids]
    events = pseudonyms.events(
        "t",
        [
            Event(user_id="a", type="view", item_id="i"),
            Event(session_id="s", type="view", item_id="i"),
        ],
    )
    assert [e.user_id for e in events] == [pseudonyms.user("t", "a"), None]
    assert events[1].session_id == "s"


def _settings(folder: Path, url: str, *, on: bool, secret: Path | None = None) -> Settings:
    privacy: dict[str, object] = {"pseudonymize": on}
    if secret is not None:
        privacy["secret_file"] = secret
    return load_settings(folder, store={"url": url}, privacy=privacy)


def test_a_store_refuses_to_be_opened_the_other_way(tmp_path: Path, store_url: str) -> None:
    plain = _settings(tmp_path, store_url, on=False)
    store = settings_store(plain)
    store.events.append("default", [Event(user_id="alice", item_id="i1", type="view")])
    store.close()

    with pytest.raises(ConfigError, match="already holds user ids as given") as raised:
        settings_store(_settings(tmp_path, store_url, on=True))
    assert raised.value.field == "privacy.pseudonymize"
    settings_store(plain).close()  # still opens as it was made


def test_a_pseudonymized_store_refuses_plain_ids_and_another_secret(
    tmp_path: Path, store_url: str
) -> None:
    on = _settings(tmp_path, store_url, on=True)
    store = settings_store(on)  # a new store takes the setting, before any person arrives
    store.events.append("default", [Event(user_id="alice", item_id="i1", type="view")])
    store.close()

    with pytest.raises(ConfigError, match=r"set privacy\.pseudonymize = true"):
        settings_store(_settings(tmp_path, store_url, on=False))
    other = tmp_path / "other.key"
    other.write_text(bytes(32).hex())
    with pytest.raises(ConfigError, match="another privacy secret"):
        settings_store(_settings(tmp_path, store_url, on=True, secret=other))
    settings_store(on).close()


def test_a_store_without_people_may_still_change_its_mind(tmp_path: Path, store_url: str) -> None:
    settings_store(_settings(tmp_path, store_url, on=False)).close()  # e.g. `penchant init`

    store = settings_store(_settings(tmp_path, store_url, on=True))  # then turned on
    store.events.append("default", [Event(user_id="alice", item_id="i1", type="view")])
    store.close()

    with pytest.raises(ConfigError, match=r"set privacy\.pseudonymize = true"):
        settings_store(_settings(tmp_path, store_url, on=False))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_bulk_import_and_cli_rights_work_by_external_id(tmp_path: Path, store_url: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "penchant.toml").write_text(
        f'[store]\nurl = "{store_url}"\n[privacy]\npseudonymize = true\n', encoding="utf-8"
    )
    people = [f"{MARKER}-{n}@example.com" for n in range(3)]
    rows = "".join(f"{p},i{n},view,{1_700_000_000 + n}\n" for n, p in enumerate(people * 4))
    events = _write(tmp_path / "events.csv", "user_id,item_id,type,timestamp\n" + rows)
    users = _write(tmp_path / "users.csv", "id,age\n" + "".join(f"{p},30\n" for p in people))
    cli = ["--data-dir", str(data)]

    imported = runner.invoke(
        app, ["import", "events", str(events), "--format", "csv", "--json", "--quiet", *cli]
    )
    assert imported.exit_code == 0, imported.output
    assert orjson.loads(imported.stdout)["stored"] == 12
    assert runner.invoke(app, ["import", "users", str(users), "--json", *cli]).exit_code == 0

    settings = load_settings(data)
    alias = settings_pseudonyms(settings).user("default", people[0])
    store = settings_store(settings)
    try:
        stored = [e for b in store.events.scan("default", EventFilter(user_id=alias)) for e in b]
        assert len(stored) == 4 and store.catalog.get_user("default", alias) is not None
        with store.engine.connect() as conn:  # no table holds an id as given
            for table in metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    assert not any(MARKER in str(v) for v in row), (table.name, row)
    finally:
        store.close()

    exported = runner.invoke(app, ["privacy", "export", people[0], *cli])
    assert exported.exit_code == 0, exported.output
    document = orjson.loads(exported.stdout)
    assert document["user_id"] == people[0] and document["profile"]["id"] == people[0]
    assert [e["user_id"] for e in document["events"]] == [people[0]] * 4
    erased = runner.invoke(app, ["privacy", "erase", people[0], "--json", *cli])
    assert erased.exit_code == 0, erased.output
    assert orjson.loads(erased.stdout)["counts"]["events"] == 4
    assert runner.invoke(app, ["privacy", "export", people[0], *cli]).exit_code != 0
    assert runner.invoke(app, ["privacy", "reinstate", people[0], *cli]).exit_code == 0


def test_importing_an_export_stores_the_person_under_this_instances_pseudonym(
    tmp_path: Path, store_url: str
) -> None:
    from penchant.jobs.export_import import import_export

    person = f"{MARKER}-moved"
    export = {
        "format": "penchant-export/1",
        "user_id": person,
        "profile": User(id=person, attributes={"age": 40}).model_dump(mode="json"),
        "events": [
            {
                "event_id": f"m{n}",
                "user_id": person,
                "item_id": f"i{n}",
                "type": "view",
                "timestamp": f"2026-01-0{n + 1}T00:00:00Z",
            }
            for n in range(3)
        ],
    }
    settings = _settings(tmp_path, store_url, on=True)
    store = settings_store(settings)
    try:
        report = import_export(settings, store, export)
        alias = settings_pseudonyms(settings).user("default", person)
        stored = [e for b in store.events.scan("default", EventFilter(user_id=alias)) for e in b]
    finally:
        store.close()

    assert report.user_id == person and report.stored == 3
    assert [e.event_id for e in stored] == ["m0", "m1", "m2"]
