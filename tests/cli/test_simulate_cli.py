"""`penchant simulate`: an A/B test of two pipelines with simulated people, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from penchant.cli import app
from penchant.jobs.store import settings_store
from penchant.settings import load_settings

runner = CliRunner()


def test_an_ab_test_runs_through_the_service_and_reports_from_the_log(tmp_path: Path) -> None:
    data = tmp_path / "shop"
    args = ["simulate", "--users", "300", "--seed", "1", "--data-dir", str(data), "--json"]
    done = runner.invoke(app, [*args, "--output", str(tmp_path / "report")])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    arms = result["arms"]
    assert set(arms) == {"popular", "personalized"}
    # every person was served, twice, ten items a list, and each list was logged
    assert arms["popular"]["users"] + arms["personalized"]["users"] == 300
    assert arms["popular"]["impressions"] + arms["personalized"]["impressions"] == 300 * 2 * 10
    assert result["lists"] == 600
    for arm in arms.values():
        assert 0 < arm["clicks"] < arm["impressions"]
        assert arm["ctr"] == arm["clicks"] / arm["impressions"]
    comparison = result["comparisons"]["personalized"]
    low, high = comparison["ci"]
    assert low < comparison["lift"] < high and 0 <= comparison["p_value"] <= 1
    assert result["sample_ratio_p"] > 0.001
    assert (tmp_path / "report" / "lift.png").exists()
    # the clicks the report counted are the clicks stored, on lists of the experiment
    store = settings_store(load_settings(data))
    try:
        stored = store.events.count("default")
    finally:
        store.close()
    assert stored > result["events_sent"]
    # again on the same shop: its world and models are reused, under a new experiment
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    second = json.loads(again.output)
    assert second["experiment"] != result["experiment"]
    assert second["arms"]["popular"]["users"] + second["arms"]["personalized"]["users"] == 300
    # and as an interleaving experiment: every list a team draft of both pipelines
    drafted = runner.invoke(app, [*args, "--interleave"])
    assert drafted.exit_code == 0, drafted.output
    preference = json.loads(drafted.output)
    assert preference["kind"] == "interleaving" and preference["lists"] == 600
    wins = preference["wins"]
    assert set(wins) == {"popular", "personalized"}
    assert sum(wins.values()) + preference["ties"] == 600
    low, high = preference["delta_ci"]
    assert low <= preference["delta"] <= high and 0 <= preference["p_value"] <= 1


def test_arms_must_be_two_known_pipelines(tmp_path: Path) -> None:
    for arms, words, more in [
        ("popular", "two distinct", []),
        ("popular,popular", "two distinct", []),
        ("popular,personalized,x", "exactly two", ["--interleave"]),
    ]:
        done = runner.invoke(app, ["simulate", "--arms", arms, "--data-dir", str(tmp_path), *more])
        assert done.exit_code != 0 and words in done.output and "Traceback" not in done.output
