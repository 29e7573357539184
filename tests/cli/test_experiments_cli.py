"""`penchant experiment`: define, start, ramp, stop and delete experiments from the shell."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from penchant.cli import app

runner = CliRunner()

AB = {
    "id": "hero_test",
    "surface": "default",
    "arms": [{"name": "control", "surface": "default"}, {"name": "b", "surface": "default"}],
}


def run(*args: str) -> tuple[int, str]:
    done = runner.invoke(app, list(args))
    return done.exit_code, done.output


def test_an_experiment_goes_from_draft_to_running_to_stopped(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    path = tmp_path / "ab.json"
    path.write_text(json.dumps({**AB, "ramp": 0.2}))
    assert run("experiment", "create", str(path), "--data-dir", data)[0] == 0
    code, text = run("experiment", "start", "hero_test", "--data-dir", data)
    assert code == 0 and "running" in text
    assert run("experiment", "ramp", "hero_test", "0.6", "--data-dir", data)[0] == 0
    code, shown = run("experiment", "show", "hero_test", "--data-dir", data)
    body = json.loads(shown)
    assert code == 0 and body["status"] == "running" and body["ramp"] == 0.6
    assert [c["ramp"] for c in body["history"]] == [0.2, 0.6]
    code, text = run("experiment", "delete", "hero_test", "--data-dir", data)
    assert code != 0 and "stop it first" in text and "Traceback" not in text
    assert run("experiment", "stop", "hero_test", "--data-dir", data)[0] == 0
    code, listed = run("experiment", "list", "--data-dir", data, "--json")
    assert code == 0 and [e["status"] for e in json.loads(listed)] == ["stopped"]
    assert run("experiment", "delete", "hero_test", "--data-dir", data)[0] == 0
    assert json.loads(run("experiment", "list", "--data-dir", data, "--json")[1]) == []


def test_bad_files_and_names_fail_with_one_readable_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    bad_arm = tmp_path / "bad.json"
    bad_arm.write_text(json.dumps({**AB, "arms": AB["arms"][:1]}))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(
        json.dumps({**AB, "arms": [*AB["arms"][:1], {"name": "x", "surface": "nope"}]})
    )
    for args, words in [
        (("create", str(broken)), "not valid JSON"),
        (("create", str(bad_arm)), "arms"),
        (("start", "missing"), "no experiment"),
        (("ramp", "missing", "0.5"), "no experiment"),
    ]:
        code, text = run("experiment", *args, "--data-dir", data)
        assert code != 0 and words in text and "Traceback" not in text, (args, text)
    assert run("experiment", "create", str(unknown), "--data-dir", data)[0] == 0
    code, text = run("experiment", "start", "hero_test", "--data-dir", data)
    assert code != 0 and "arms[1].surface" in text and "nope" in text
    code, text = run("experiment", "ramp", "hero_test", "1.5", "--data-dir", data)
    assert code != 0 and "ramp" in text
