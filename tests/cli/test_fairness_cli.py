"""`penchant fairness audit`: the files it writes and its errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from penchant.cli.app import app
from penchant.testing.synthetic import write_movielens as movielens

runner = CliRunner()


def test_the_audit_writes_its_rows_report_and_curves(tmp_path: Path) -> None:
    folder = movielens(tmp_path / "ml")
    out = tmp_path / "audit"
    args = ["fairness", "audit", "--dataset", str(folder), "--format", "movielens"]
    done = runner.invoke(app, [*args, "--model", "itemknn", "--candidates", "30", "-o", str(out)])
    assert done.exit_code == 0, done.output
    rows = json.loads((out / "audit.json").read_text())
    assert rows[0]["reranker"] == "none" and rows[0]["strength"] == 0
    assert {"ndcg@10", "arp"} <= set(rows[0]["metrics"])
    assert {r["reranker"] for r in rows} == {
        "none",
        "diversity",
        "calibration",
        "long_tail",
        "popularity_penalty",
        "fair_exposure",
    }
    for metric in ("arp", "ild", "miscalibration", "exposure_disparity"):
        assert (out / f"tradeoff-{metric}.png").stat().st_size > 1000
    report = (out / "audit.md").read_text()
    assert "Where the pipeline stands" in report and "head exposure" in report
    assert "found by bisection" in report and "popularity_penalty (found)" in report
    assert "Report:" in done.output


def test_a_dataset_without_categories_fails_in_one_line(tmp_path: Path) -> None:
    folder = movielens(tmp_path / "ml")
    (folder / "movies.csv").unlink()
    args = ["fairness", "audit", "--dataset", str(folder), "--format", "movielens"]
    done = runner.invoke(app, [*args, "-o", str(tmp_path / "audit")])
    assert done.exit_code == 1
    assert "categories" in done.output and "Traceback" not in done.output


def test_it_takes_evaluates_data_options(tmp_path: Path) -> None:
    folder = movielens(tmp_path / "ml")
    args = ["fairness", "audit", "--dataset", str(folder), "--format", "movielens"]
    done = runner.invoke(app, [*args, "--timestamp-unit", "fortnights", "-o", str(tmp_path / "a")])
    assert done.exit_code != 0 and "--timestamp-unit" in done.output
    assert "Traceback" not in done.output
    # every user dropped by --min-user: refused in one line, nothing written
    done = runner.invoke(app, [*args, "--min-user", "100000", "-o", str(tmp_path / "b")])
    assert done.exit_code != 0 and "Traceback" not in done.output, done.output
    assert not (tmp_path / "b" / "audit.json").exists()
