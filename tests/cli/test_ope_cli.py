"""`penchant ope`: JSON equal to the library's estimates, a table, one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from penchant.cli import app
from penchant.experiments import estimate_all
from penchant.experiments.ope_data import read_logs

runner = CliRunner()
N, N_ACTIONS = 300, 4


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Logs in the Open Bandit Dataset's layout (positions 1..2), a policy and a model."""
    rng = np.random.default_rng(8)
    action = rng.integers(0, N_ACTIONS, size=N)
    position = rng.integers(1, 3, size=N)
    feature = rng.normal(size=N)
    click = (rng.random(N) < 0.2 + 0.1 * (action == 2)).astype(int)
    logs = tmp_path / "logs.csv"
    with logs.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "timestamp", "item_id", "position", "click", "propensity_score",
                         "user_feature_0", "affinity"])  # fmt: skip
        for i in range(N):
            stamp = f"2019-11-24 00:00:{i % 60:02d}+00:00"
            writer.writerow([i, stamp, action[i], position[i], click[i], 1 / N_ACTIONS,
                             "ab"[i % 2], f"{feature[i]:.6f}"])  # fmt: skip
    dist = rng.dirichlet(np.ones(N_ACTIONS), size=(N, 2)).transpose(0, 2, 1)
    q = rng.uniform(0.1, 0.4, size=(N, N_ACTIONS, 2))
    paths = {"logs": logs, "dist": tmp_path / "dist.npy", "q": tmp_path / "q.npy"}
    np.save(paths["dist"], dist)
    np.save(paths["q"], q)
    return paths


def _library(files: dict[str, Path], **options: object) -> dict[str, dict[str, object]]:
    logs = read_logs(files["logs"])
    estimates = estimate_all(
        reward=logs.reward, action=logs.action, pscore=logs.pscore,
        action_dist=np.load(files["dist"]), position=logs.position, context=logs.context,
        **options,
    )  # fmt: skip
    return {name: e.as_dict() for name, e in estimates.items()}


def test_json_is_the_library_estimate_with_a_given_reward_model(files: dict[str, Path]) -> None:
    result = invoke("ope", "--logs", files["logs"], "--action-dist", files["dist"],
                    "--estimated-rewards", files["q"], "--alpha", "0.1", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert list(printed) == ["ips", "snips", "dm", "dr"]
    expected = _library(files, estimated_rewards=np.load(files["q"]), alpha=0.1)
    for name, entry in printed.items():
        assert entry["value"] == pytest.approx(expected[name]["value"], rel=1e-12)
        assert entry["ci"] == pytest.approx(expected[name]["ci"], rel=1e-12)
        low, high = entry["ci"]
        assert low < entry["value"] < high


def test_json_without_a_model_uses_the_built_in_one_seeded(files: dict[str, Path]) -> None:
    result = invoke("ope", "--logs", files["logs"], "--action-dist", files["dist"],
                    "--json", "--seed", "3", "--folds", "3", "--clip", "3.5")  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    expected = _library(files, rng=np.random.default_rng(3), folds=3, lambda_=3.5)
    for name in ("ips", "snips", "dm", "dr"):
        assert printed[name]["value"] == pytest.approx(expected[name]["value"], rel=1e-12)
        assert printed[name]["ci"] == pytest.approx(expected[name]["ci"], rel=1e-12)


def test_bootstrap_intervals_from_the_command(files: dict[str, Path]) -> None:
    args = ("ope", "--logs", files["logs"], "--action-dist", files["dist"],
            "--estimated-rewards", files["q"], "--bootstrap", "200", "--json")  # fmt: skip
    first, again = invoke(*args), invoke(*args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == json.loads(again.stdout)
    expected = _library(
        files, estimated_rewards=np.load(files["q"]), n_bootstrap=200,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    assert json.loads(first.stdout)["dr"]["ci"] == pytest.approx(expected["dr"]["ci"])


def test_the_table_names_every_estimator(files: dict[str, Path]) -> None:
    result = invoke("ope", "--logs", files["logs"], "--action-dist", files["dist"])
    assert result.exit_code == 0, result.output
    for words in ("IPS", "SNIPS", "DM", "DR", "95% interval", "built-in reward model"):
        assert words in result.stdout


def test_errors_are_one_line_naming_the_problem(files: dict[str, Path], tmp_path: Path) -> None:
    short = tmp_path / "short.npy"
    np.save(short, np.load(files["dist"])[:10])
    no_click = tmp_path / "no_click.csv"
    lines = files["logs"].read_text().splitlines()
    no_click.write_text("\n".join(line.replace(",click,", ",clicked,") for line in lines))
    cases = [
        (("--logs", tmp_path / "none.csv", "--action-dist", files["dist"]), "none.csv"),
        (("--logs", files["logs"], "--action-dist", tmp_path / "none.npy"), "none.npy"),
        (("--logs", no_click, "--action-dist", files["dist"]), "no reward column"),
        (("--logs", files["logs"], "--action-dist", short), "short.npy has 10 rows"),
        (
            ("--logs", files["logs"], "--action-dist", files["dist"], "--estimated-rewards", short),
            "short.npy has shape",
        ),
        (("--logs", files["logs"], "--action-dist", files["dist"], "--alpha", "2"), "alpha"),
    ]
    for args, words in cases:
        result = invoke("ope", *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stdout == ""
        message = result.stderr.strip().splitlines()
        assert len(message) == 1 and words in message[0], message


def test_an_action_outside_the_policy_is_reported(files: dict[str, Path], tmp_path: Path) -> None:
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.full((N, 2, 2), 0.5))
    result = invoke("ope", "--logs", files["logs"], "--action-dist", narrow)
    assert result.exit_code == 1
    assert "action must lie in [0, 2)" in result.stderr
