"""The command line: init, import, stats, keys, serve, demo, and errors as one line."""

from __future__ import annotations

import importlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from penchant.cli import app
from penchant.settings import Settings

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result: Result, *, code: int = 1, says: str = "") -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def events_csv(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("who,item,stars,when\nu1,i1,4,1700000000000\nu2,i1,5,1700000001000\nu3,,,x\n")
    return path


def test_init_writes_a_private_key_file_and_does_not_print_the_key(data: Path) -> None:
    result = invoke("init", "--data-dir", data)

    assert result.exit_code == 0, result.output
    key_file = data / "admin.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key.startswith("pk_") and key not in result.output
    assert str(key_file) in result.output
    assert (data / "penchant.toml").is_file()


def test_init_shows_the_key_only_when_asked(data: Path) -> None:
    result = invoke("init", "--data-dir", data, "--show-key", "--json")

    report = orjson.loads(result.stdout)
    assert report["key"] == (data / "admin.key").read_text().strip()
    assert report["key_created"] and report["config_created"]
    again = orjson.loads(invoke("init", "--data-dir", data, "--show-key", "--json").stdout)
    assert "key" not in again and not again["key_created"]


def test_import_then_stats(data: Path, events_csv: Path) -> None:
    result = invoke(
        "import", "events", events_csv, "--data-dir", data, "--json",
        "--map", "who=user_id", "--map", "item=item_id", "--map", "stars=value",
        "--map", "when=timestamp", "--type", "rating", "--timestamp-unit", "ms",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert (report["stored"], report["rejected"], report["rows_read"]) == (2, 1, 3)
    assert Path(report["rejects_path"]).parent == data / "rejects"
    stats = invoke("stats", "--data-dir", data, "--json")
    assert stats.exit_code == 0, stats.output
    counts = orjson.loads(stats.stdout)
    assert {k: counts[k] for k in ("events", "users", "items")} == {
        "events": 2,
        "users": 2,
        "items": 1,
    }
    assert counts["by_type"] == {"rating": 2}
    text = invoke("stats", "--data-dir", data)
    assert text.exit_code == 0 and "events" in text.stdout


def test_import_text_report_names_the_rejects_file(data: Path, events_csv: Path) -> None:
    result = invoke(
        "import", "events", events_csv, "--data-dir", data, "-q", "--type", "view",
        "--map", "who=user_id", "--map", "when=timestamp", "--timestamp-unit", "ms",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "2 stored" in result.stdout and "1 rejected" in result.stdout
    assert "events.csv.rejects.jsonl" in result.stdout


def test_import_items_and_users(data: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    items.write_text("sku,title,colour\na,Shoe,red\n")
    users = tmp_path / "users.jsonl"
    users.write_text('{"id": "u1", "plan": "pro"}\n')

    result = invoke("import", "items", items, "--map", "sku=id", "--data-dir", data, "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["stored"] == 1
    result = invoke("import", "users", users, "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert "users: 1 stored" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["import", "events", "missing.csv"], 1, "no such file"),
        (["import", "events", "{csv}", "--timestamp-unit", "days"], 1, "--timestamp-unit"),
        (["import", "events", "{csv}", "--map", "who"], 1, "COLUMN=FIELD"),
        (["import", "events", "{csv}", "--format", "xml"], 1, "unknown format"),
        (["import", "events", "{csv}"], 1, "no user_id or session_id column"),
        (["import", "events", "{csv}", "--bogus"], 2, "No such option"),
        (["keys", "create", "--scopes", "root"], 1, "unknown scope"),
        (["keys", "revoke", "abc"], 1, "no active key"),
        (["serve", "--port", "0"], 2, "--port"),
    ],
)
def test_errors_are_one_line_without_traceback(
    data: Path, events_csv: Path, args: list[str], code: int, says: str
) -> None:
    args = [a.replace("{csv}", str(events_csv)) for a in args]
    assert_one_line_error(invoke(*args, "--data-dir", data), code=code, says=says)


def test_a_broken_config_is_one_line(data: Path) -> None:
    data.mkdir()
    (data / "penchant.toml").write_text("[service]\nport = 'eighty'\n")
    assert_one_line_error(invoke("stats", "--data-dir", data), says="config service.port")


def test_keys_create_list_revoke(data: Path) -> None:
    created = invoke(
        "keys", "create", "--scopes", "events:write,recs:read", "--name", "web", "--json",
        "--data-dir", data,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    made = orjson.loads(created.stdout)
    key, key_id = made["key"], made["key_id"]
    assert key.startswith(f"pk_{key_id}_")

    listed = invoke("keys", "list", "--json", "--data-dir", data)
    (record,) = orjson.loads(listed.stdout)
    assert record == {
        "key_id": key_id,
        "tenant": "default",
        "name": "web",
        "scopes": ["events:write", "recs:read"],
        "created_at": record["created_at"],
        "revoked_at": None,
    }
    table = invoke("keys", "list", "--data-dir", data)
    secret = key.split("_", 2)[2]
    for output in (listed.output, table.output):
        assert secret not in output and "sha256" not in output

    assert invoke("keys", "revoke", key_id, "--data-dir", data).exit_code == 0
    (record,) = orjson.loads(invoke("keys", "list", "--json", "--data-dir", data).stdout)
    assert record["revoked_at"] is not None
    assert_one_line_error(invoke("keys", "revoke", key_id, "--data-dir", data))


def test_serve_refuses_a_public_address_without_keys(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = importlib.import_module("penchant.service.app")
    served: list[Settings] = []
    monkeypatch.setattr(service, "run", served.append)

    result = invoke("serve", "--host", "0.0.0.0", "--data-dir", data)
    assert_one_line_error(result, says="refusing to serve on 0.0.0.0")
    assert served == []

    result = invoke("serve", "--port", "8123", "--workers", "2", "--data-dir", data)
    assert result.exit_code == 0, result.output
    (settings,) = served
    assert (settings.service.host, settings.service.port, settings.service.workers) == (
        "127.0.0.1",
        8123,
        2,
    )


def test_demo_generates_and_imports_a_world_and_is_idempotent(data: Path) -> None:
    small = ["--users", "60", "--items", "80", "--days", "3", "--data-dir", str(data)]
    first = invoke("demo", *small, "--json")
    assert first.exit_code == 0, first.output
    report = orjson.loads(first.stdout)
    assert report["events"]["stored"] == report["world"]["events"] > 0
    assert report["events"]["rejected"] == 0
    assert report["stats"]["events"] == report["world"]["events"]
    assert report["stats"]["catalog_items"] == 80
    assert report["stats"]["catalog_users"] == 60
    assert (data / "admin.key").exists()

    again = invoke("demo", *small, "--slot-decisions", "60", "--ab-users", "0")
    assert again.exit_code == 0, again.output
    assert "0 new events" in again.stdout
    assert "What to try next" in again.stdout
    assert "GET /v1/recommendations?user_id=" in again.stdout
    assert "because you viewed" in again.stdout
    assert "POST /v1/decisions for slot home_hero" in again.stdout
    counts = orjson.loads(invoke("stats", "--json", "--data-dir", str(data)).stdout)
    by_type = counts["by_type"]
    # the content slot: 60 decisions to learn from and 6 for its table, each logged; every
    # simulated click on one was credited as a reward
    assert by_type["decision"] == 60 + 6
    slot_clicks = by_type.get("reward", 0)
    # the world is stored once; the rest of the second run added a click, three views
    # and the impressions of the five lists it was served
    live = counts["events"] - report["world"]["events"] - by_type["decision"] - 2 * slot_clicks
    assert 4 < live <= 4 + 5 * 5
    assert by_type["click"] == report["stats"]["by_type"]["click"] + 1 + slot_clicks

    # the A/B test of the popular and the personalized pipeline, reported from the log
    ab = invoke("demo", *small, "--slot-decisions", "0", "--ab-users", "40")
    assert ab.exit_code == 0, ab.output
    assert "A/B test through the API" in ab.stdout
    assert "Personalized against popular: CTR lift" in ab.stdout


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert result.exit_code == 0
    assert "import" in result.output and "keys" in result.output


def test_the_console_script_prints_one_line(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "from penchant.cli import main; main()"]
    done = subprocess.run(
        [*command, "import", "events", tmp_path / "nope.csv", "--data-dir", tmp_path / "d"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.csv'}: no such file"]
    version = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert version.returncode == 0 and version.stdout.strip() == "0.1.0"
