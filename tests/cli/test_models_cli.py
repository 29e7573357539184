"""`penchant train` and `penchant models list|activate|rollback`: output, exit codes, errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from penchant.cli import app
from penchant.cli.models import parse_params
from penchant.errors import InvalidInput
from penchant.jobs.init import init_data_dir
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import opened_store
from penchant.schema import Event
from penchant.settings import load_settings

runner = CliRunner()
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result: Result, *, code: int = 1, says: str = "") -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with 600 clicks of 30 users on 20 items over 25 days."""
    settings = load_settings(tmp_path / "data", training={"models": ["popular", "itemknn"]})
    init_data_dir(settings)
    events = [
        Event(
            event_id=f"e{k}",
            user_id=f"u{k % 30}",
            item_id=f"i{(k * 7 + k // 30) % 20}",
            type="click",
            timestamp=T0 + timedelta(hours=k),
        )
        for k in range(600)
    ]
    with opened_store(settings) as store:
        store.events.append("default", events)
    (settings.data_dir / "penchant.toml").write_text(
        '[training]\nmodels = ["popular", "itemknn"]\n'
    )
    return settings.data_dir


def train_json(data: Path, *args: str) -> dict[str, object]:
    result = invoke("train", "--data-dir", data, "--json", *args)
    assert result.exit_code == 0, result.output
    document = orjson.loads(result.stdout)
    assert isinstance(document, dict)
    return document


def test_train_prints_the_version_and_a_table(data: Path) -> None:
    result = invoke("train", "--data-dir", data, "--quiet")

    assert result.exit_code == 0, result.output
    version = ModelRegistry(data / "models", "default").active()
    assert version is not None
    assert f"Version {version} (active)" in result.stdout
    assert "Trained on 600 interactions of 30 users and 20 items" in result.stdout
    for word in ("popular", "itemknn", "ndcg@10", "recall@20", "fit s"):
        assert word in result.stdout


def test_train_json_with_models_and_params(data: Path) -> None:
    document = train_json(data, "--models", "itemknn", "--param", "itemknn.k=3", "--no-activate")

    assert document["activated"] is False
    manifest = document["manifest"]
    assert isinstance(manifest, dict)
    assert list(manifest["models"]) == ["itemknn"]
    assert manifest["models"]["itemknn"]["params"] == {"k": 3}
    assert ModelRegistry(data / "models", "default").active() is None


def test_list_activate_and_rollback(data: Path) -> None:
    first = train_json(data)["version"]
    second = train_json(data, "--no-activate")["version"]

    listed = orjson.loads(invoke("models", "list", "--data-dir", data, "--json").stdout)
    assert [(v["version"], v["active"]) for v in listed] == [(first, True), (second, False)]
    assert set(listed[0]["models"]) == {"popular", "itemknn"}
    assert 0 <= listed[0]["models"]["itemknn"]["ndcg@10"] <= 1
    assert listed[0]["data"]["interactions"] == 600

    table = invoke("models", "list", "--data-dir", data)
    assert table.exit_code == 0, table.output
    active_line = next(line for line in table.stdout.splitlines() if str(first) in line)
    assert active_line.lstrip().startswith("*") and "itemknn" in table.stdout

    activated = invoke("models", "activate", second, "--data-dir", data)
    assert activated.exit_code == 0, activated.output
    assert activated.stdout.strip() == f"Active version: {second} (was {first})"
    back = invoke("models", "rollback", "--data-dir", data, "--json")
    assert back.exit_code == 0, back.output
    assert orjson.loads(back.stdout) == {"active": first, "previous": second}
    assert_one_line_error(
        invoke("models", "rollback", "--data-dir", data), says="no earlier active model version"
    )


def test_list_of_an_empty_data_dir(tmp_path: Path) -> None:
    result = invoke("models", "list", "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "No model versions for tenant default; run 'penchant train'." in result.stdout
    assert orjson.loads(invoke("models", "list", "--data-dir", tmp_path, "--json").stdout) == []


def test_bad_input_is_one_line(data: Path, tmp_path: Path) -> None:
    assert_one_line_error(
        invoke("models", "activate", "20200101T000000Z-abcdef", "--data-dir", data),
        says="no model version '20200101T000000Z-abcdef'",
    )
    assert_one_line_error(
        invoke("models", "activate", "../x", "--data-dir", data), says="invalid artifact version"
    )
    assert_one_line_error(
        invoke("train", "--data-dir", data, "--models", "popular,nope"),
        says="unknown model 'nope'",
    )
    assert_one_line_error(
        invoke("train", "--data-dir", data, "--param", "factors=3"),
        says="expected MODEL.NAME=VALUE",
    )
    assert_one_line_error(
        invoke("train", "--data-dir", data, "--param", "itemknn.nope=3"), says="model itemknn"
    )
    empty = tmp_path / "empty"
    init_data_dir(load_settings(empty))
    assert_one_line_error(invoke("train", "--data-dir", empty), says="no events to train on")
    (data / "models" / "default" / "recommender").mkdir(parents=True, exist_ok=True)
    (data / "models" / "default" / "recommender" / "ACTIVE").write_text("garbage")
    assert_one_line_error(invoke("models", "rollback", "--data-dir", data), says="ACTIVE")


def test_parse_params_reads_values_as_json() -> None:
    assert parse_params(["ials.factors=32", "ials.alpha=0.5", "itemknn.neighbourhood=target"]) == {
        "ials": {"factors": 32, "alpha": 0.5},
        "itemknn": {"neighbourhood": "target"},
    }
    assert parse_params(["popular.half_life_days=null"]) == {"popular": {"half_life_days": None}}
    with pytest.raises(InvalidInput):
        parse_params(["ials.factors="])


@pytest.mark.slow
def test_train_runs_as_the_background_trainer_runs_it(data: Path) -> None:
    from penchant.jobs.trainer import child_environment, train_command

    settings = load_settings(data)
    done = subprocess.run(
        train_command(settings),
        env=child_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --quiet: no progress display
    version = orjson.loads(done.stdout)["version"]
    assert ModelRegistry.of(settings).active() == version
    assert sys.executable in train_command(settings)
