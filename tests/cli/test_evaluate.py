"""`penchant evaluate`: the report files, numbers anyone can recompute, and bad input."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from penchant.cli import app
from penchant.testing.synthetic import planted_blocks, topic_text
from shared_data import need_dataset

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def interactions(tmp_path: Path) -> Path:
    """A plain CSV with the header `user,item,value,timestamp`."""
    data = planted_blocks(n_users=70, n_items=30, rng=2)
    path = tmp_path / "plays.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "value", "timestamp"])
        for n, (u, i) in enumerate(zip(data.users, data.items, strict=True)):
            writer.writerow([f"u{u}", f"i{i}", 1 + n % 5, 1_600_000_000 + n * 60])
    return path


def read_lists(path: Path) -> dict[str, list[str]]:
    lists: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with path.open() as handle:
        for row in csv.DictReader(handle):
            lists[row["user"]].append((int(row["rank"]), row["item"]))
    return {u: [i for _, i in sorted(items)] for u, items in lists.items()}


def read_pairs(path: Path) -> dict[str, set[str]]:
    pairs: dict[str, set[str]] = defaultdict(set)
    with path.open() as handle:
        for row in csv.DictReader(handle):
            pairs[row["user"]].add(row["item"])
    return pairs


def test_the_report_holds_numbers_anyone_can_recompute(interactions: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = invoke(
        "evaluate", "--dataset", interactions, "--format", "csv", "--models",
        "popular,itemknn,ease", "--k", "5,10", "--output", out, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("report.md", "metrics.json", "metrics_vs_k.png", "popularity_bias.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"popular", "itemknn", "ease"}
    train, test = read_pairs(out / "train.csv"), read_pairs(out / "test.csv")
    assert (
        sum(map(len, train.values())) + sum(map(len, test.values()))
        == 1 + sum(1 for _ in interactions.open()) - 2
    )  # every pair is in exactly one part (minus the header)
    for model in ("itemknn", "ease"):
        lists = read_lists(out / f"recs-{model}.csv")
        assert set(lists) == set(test)
        ndcg, recall = [], []
        for user, relevant in test.items():
            top = lists[user]
            assert not set(top) & train[user]  # seen items never come back
            gains = [1.0 / math.log2(r + 2) for r, i in enumerate(top[:10]) if i in relevant]
            ideal = sum(1.0 / math.log2(r + 2) for r in range(min(10, len(relevant))))
            ndcg.append(sum(gains) / ideal)
            recall.append(len(set(top[:5]) & relevant) / len(relevant))
        assert metrics["models"][model]["metrics"]["ndcg@10"] == pytest.approx(
            np.mean(ndcg), abs=1e-5
        )
        assert metrics["models"][model]["metrics"]["recall@5"] == pytest.approx(
            np.mean(recall), abs=1e-5
        )
        low, high = metrics["models"][model]["intervals"]["ndcg@10"]
        assert low <= np.mean(ndcg) <= high
    report = (out / "report.md").read_text()
    assert "| ease |" in report and "Holm" in report
    assert "Report:" in result.output and "ease" in result.output


def test_headerless_file_with_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.tsv"
    rows = [f"{ts}\tu{u}\ti{(u + j) % 12}\n" for u in range(30) for j, ts in enumerate(range(4))]
    path.write_text("".join(rows))
    out = tmp_path / "r"
    result = invoke(
        "evaluate", "--dataset", path, "--format", "tsv", "--columns", "when,who,what",
        "--user-col", "who", "--item-col", "what", "--time-col", "when",
        "--protocol", "leave-last-out", "--models", "popular", "--output", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["protocol"] == "leave-last-out"
    assert document["split"]["test_users"] == 30


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--models", "ease,nonsense"], "unknown model 'nonsense'"),
        (["--protocol", "random"], "--protocol 'random'"),
        (["--k", "10,x"], "--k"),
        (["--k", "0"], "--k"),
        (["--test-fraction", "1.5"], "test_fraction"),
        (["--models", "auto", "--auto-models", "ease,hybrid"], "cannot tune hybrid"),
        (["--models", "ease", "--auto-models", "ease"], "only with --models auto"),
    ],
)
def test_bad_options_get_one_line(
    interactions: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    result = invoke("evaluate", "--dataset", interactions, "--output", tmp_path / "o", *args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines


def test_a_missing_file_or_folder_without_a_preset(tmp_path: Path) -> None:
    result = invoke("evaluate", "--dataset", tmp_path / "none.csv", "--output", tmp_path / "o")
    assert result.exit_code == 1 and "no such file" in result.stderr
    result = invoke("evaluate", "--dataset", tmp_path, "--format", "csv", "--output", tmp_path)
    assert result.exit_code == 1 and "folder" in result.stderr


def test_movielens_folder_with_auto(tmp_path: Path) -> None:
    folder = need_dataset("movielens-100k")
    out = tmp_path / "ml"
    result = invoke(
        "evaluate", "--dataset", folder, "--format", "movielens-100k", "--models",
        "popular,auto", "--trials", "2", "--k", "10", "--output", out, "--json",
        "--auto-models", "popular,itemknn,ease",  # every model: tests/evaluation/test_tuning.py
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["users"] == 943 and document["items"] == 1682
    auto = document["models"]["auto"]
    assert auto["metrics"]["ndcg@10"] > document["models"]["popular"]["metrics"]["ndcg@10"]
    assert "chosen on validation" in auto["notes"]
    assert (out / "validation.csv").is_file()


def test_auto_applies_the_recency_it_chose(tmp_path: Path) -> None:
    from penchant.testing.synthetic import drifting_tastes

    data = drifting_tastes(n_users=150)
    path = tmp_path / "drift.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "timestamp"])
        for u, i, t in zip(data.users, data.items, data.first_ts, strict=True):
            writer.writerow([f"u{u}", f"i{i}", 1_600_000_000 + int(t) // 1_000_000])
    result = invoke(
        "evaluate", "--dataset", path, "--format", "csv", "--protocol", "leave-last-out",
        "--models", "itemknn,auto", "--trials", "3", "--k", "5", "--output", tmp_path / "r",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)["models"]
    assert models["auto"]["notes"]["recency half-life (days)"] is not None
    assert models["auto"]["metrics"]["hit_rate@5"] > models["itemknn"]["metrics"]["hit_rate@5"]


def test_cold_start_holds_out_a_tenth_of_the_items_and_lists_only_them(
    interactions: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    result = invoke(
        "evaluate", "--dataset", interactions, "--format", "csv", "--protocol", "cold-start",
        "--models", "popular,itemknn", "--k", "5,10", "--output", out, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    train, test = read_pairs(out / "train.csv"), read_pairs(out / "test.csv")
    cold = set().union(*test.values())
    assert len(cold) == 3  # 10% of the 30 items
    assert not cold & set().union(*train.values())
    for model in ("popular", "itemknn"):
        listed = set().union(*map(set, read_lists(out / f"recs-{model}.csv").values()))
        assert listed <= cold, model


def test_items_file_feeds_the_content_model_on_cold_items(
    interactions: Path, tmp_path: Path
) -> None:
    """`--items` gives the texts: the planted groups are cooking (even) and space (odd), so
    the content model lists the cold items of a person's own group first."""
    pytest.importorskip("sentence_transformers", reason="the content model needs penchant[text]")
    items = tmp_path / "items.csv"
    with items.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "title", "description", "categories"])
        writer.writerow(["bad id with a newline\n", "x", "y", "z"])  # rejected, counted
        for i in range(30):
            writer.writerow([f"i{i}", topic_text(i), f"part {i}", "a|b"])
    out = tmp_path / "report"
    result = invoke(
        "evaluate", "--dataset", interactions, "--format", "csv", "--protocol", "cold-start",
        "--test-fraction", "0.3", "--models", "popular,content", "--items", items,
        "--k", "3", "--output", out, "--quiet", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["item_texts"] == {"file": "items.csv", "items": 30, "rejected_rows": 1}
    cold = {int(i[1:]) for i in set().union(*read_pairs(out / "test.csv").values())}
    assert {c % 2 for c in cold} == {0, 1}
    lists = read_lists(out / "recs-content.csv")
    first_is_own = [int(listed[0][1:]) % 2 == int(u[1:]) % 2 for u, listed in lists.items()]
    assert np.mean(first_is_own) >= 0.95
    models = document["models"]
    assert models["content"]["metrics"]["ndcg@3"] > models["popular"]["metrics"]["ndcg@3"]


def test_content_without_texts_and_a_missing_items_file_are_one_line_errors(
    interactions: Path, tmp_path: Path
) -> None:
    base = ["evaluate", "--dataset", interactions, "--format", "csv", "--output", tmp_path / "r"]
    result = invoke(*base, "--models", "content")
    assert result.exit_code != 0
    assert "--models content: needs the items' texts; give --items FILE" in result.output
    result = invoke(*base, "--models", "content", "--items", tmp_path / "nope.csv")
    assert result.exit_code != 0
    assert "--items" in result.output and "no such file" in result.output
    assert "Traceback" not in result.output
