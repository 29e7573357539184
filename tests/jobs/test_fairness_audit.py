"""The fairness audit on a small MovieLens-format dataset with known tastes."""

from __future__ import annotations

from pathlib import Path

import pytest

from penchant.errors import InvalidInput
from penchant.jobs.evaluate import EvaluateOptions
from penchant.jobs.fairness_audit import (
    ARP_TARGET,
    TARGET_PRECISION,
    AuditOptions,
    best_setting,
    run_audit,
)
from penchant.testing.synthetic import write_movielens as movielens

SWEEP = {
    "diversity": (1.0, 4.0),
    "calibration": (0.5, 0.99),
    "long_tail": (0.9,),
    "popularity_penalty": (0.5,),
}


def options(
    folder: Path, candidates: int = 30, sweep: dict[str, tuple[float, ...]] = SWEEP
) -> AuditOptions:
    data = EvaluateOptions(dataset=folder, output=folder / "out", format="movielens")
    return AuditOptions(data=data, model="itemknn", candidates=candidates, strengths=sweep)


def test_every_reranker_and_strength_gets_a_row_judged_against_none(tmp_path: Path) -> None:
    rows = run_audit(options(movielens(tmp_path / "ml")))
    assert [(r["reranker"], r["strength"]) for r in rows[:-1]] == [
        ("none", 0.0),
        ("diversity", 1.0),
        ("diversity", 4.0),
        ("calibration", 0.5),
        ("calibration", 0.99),
        ("long_tail", 0.9),
        ("popularity_penalty", 0.5),
    ]
    assert rows[-1]["reranker"] == "popularity_penalty" and "found_by" in rows[-1]
    base = rows[0]["metrics"]
    assert {"ndcg@10", "arp", "ild", "miscalibration", "long_tail_share"} <= set(base)
    assert 0 < base["ndcg@10"] <= 1
    by = {(r["reranker"], r["strength"]): r["metrics"] for r in rows}
    # each re-ranker moves the metric it is for
    assert by[("diversity", 4.0)]["ild"] > base["ild"]
    assert by[("calibration", 0.99)]["miscalibration"] < base["miscalibration"]
    assert by[("popularity_penalty", 0.5)]["arp"] < base["arp"]
    shares = rows[0]["groups"]["items"]
    assert shares["head"]["exposure_share"] + shares["tail"]["exposure_share"] == pytest.approx(1)
    best = best_setting(rows, 10, arp_cut=0.0, ndcg_loss=1.0)
    assert best is not None and best["arp_cut"] >= 0


def test_the_audit_finds_the_least_penalty_that_cuts_popularity_by_the_target(
    tmp_path: Path,
) -> None:
    folder = movielens(tmp_path / "ml")
    rows = run_audit(options(folder, sweep={"popularity_penalty": (0.1,)}))
    found = rows[-1]
    assert found["found_by"] and 0 < found["strength"] <= 1
    base = rows[0]["metrics"]["arp"]
    assert found["metrics"]["arp"] <= (1 - ARP_TARGET) * base
    # a step of the bisection's precision less does not reach the target
    weaker = found["strength"] - 2 * TARGET_PRECISION
    again = run_audit(options(folder, sweep={"popularity_penalty": (weaker,)}))
    assert again[1]["strength"] == weaker
    assert again[1]["metrics"]["arp"] > (1 - ARP_TARGET) * base


def test_the_audit_needs_categories_and_enough_candidates(tmp_path: Path) -> None:
    folder = movielens(tmp_path / "ml")
    with pytest.raises(InvalidInput):
        run_audit(options(folder, candidates=5))
    (folder / "movies.csv").write_text("movieId,title,genres\n1,Movie,(no genres listed)\n")
    with pytest.raises(InvalidInput) as info:
        run_audit(options(folder))
    assert info.value.field == "items"


def test_the_best_setting_cuts_popularity_most_within_the_accuracy_budget() -> None:
    def row(name: str, strength: float, ndcg: float, arp: float) -> dict[str, object]:
        return {"reranker": name, "strength": strength, "metrics": {"ndcg@10": ndcg, "arp": arp}}

    rows = [
        row("none", 0.0, 0.40, 100.0),
        row("a", 0.5, 0.39, 75.0),  # -25% ARP for -2.5% NDCG: too small a cut
        row("a", 0.9, 0.385, 68.0),  # -32% for -3.75%: qualifies
        row("b", 0.5, 0.383, 60.0),  # -40% for -4.25%: qualifies, and cuts most
        row("b", 0.9, 0.30, 20.0),  # -80% for -25%: over the budget
    ]
    best = best_setting(rows, 10)
    assert best is not None and (best["reranker"], best["strength"]) == ("b", 0.5)
    assert best["arp_cut"] == pytest.approx(0.4) and best["ndcg_loss"] == pytest.approx(0.0425)
    assert best_setting(rows[:2], 10) is None
