"""Evaluation reports: metrics.json, a Markdown leaderboard, PNG plots, the split and the lists."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from penchant.data import Split
from penchant.evaluation.metrics import CATALOG_METRICS
from penchant.evaluation.run import ModelResult
from penchant.evaluation.stats import PairedComparison, holm, paired_comparison

#: The leaderboard's columns, by metric name (all ks of each are in metrics.json).
_BOARD = ("ndcg", "recall", "map", "mrr", "hit_rate")


@dataclass(frozen=True)
class Comparison:
    """A model against the leaderboard's best on the primary metric, Holm-adjusted."""

    model: str
    against: str
    test: PairedComparison
    holm_pvalue: float


def compare_to_best(
    results: Sequence[ModelResult], metric: str, *, rng: int = 0
) -> list[Comparison]:
    """Paired tests of every model against the best one by `metric` (same users, same order).

    The t-test p-values are adjusted together with Holm's method.
    """
    if len(results) < 2:
        return []
    best = max(results, key=lambda r: r.mean(metric))
    others = [r for r in results if r is not best]
    tests = [
        paired_comparison(best.per_user[metric], r.per_user[metric], metric=metric, rng=rng)
        for r in others
    ]
    adjusted = holm([t.t_pvalue if math.isfinite(t.t_pvalue) else 1.0 for t in tests])
    return [
        Comparison(r.label, best.label, t, p)
        for r, t, p in zip(others, tests, adjusted, strict=True)
    ]


def write_report(
    out: Path,
    results: Sequence[ModelResult],
    split: Split,
    ks: Sequence[int],
    *,
    header: Mapping[str, Any],
    validation: Split | None = None,
    confidence: float = 0.95,
    rng: int = 0,
) -> dict[str, Any]:
    """Write everything an evaluation produced into a folder.

    Files: `metrics.json`, `report.md`, `metrics_vs_k.png`, `popularity_bias.png`,
    `train.csv`, `validation.csv` (when tuning used one), `test.csv`, `fold_in.csv` (strong
    protocol), and `recs-<model>.csv` (user,item,rank) per model.

    Args:
        out: the folder (created).
        results: one per model, all on `split`.
        split: the split the results were computed on.
        ks: the cut-offs.
        header: facts about the run (dataset, protocol, seed, command...).
        validation: the validation split tuning used, if any.
        confidence: of the bootstrap intervals.
        rng: seed of the bootstrap.

    Returns:
        The content of metrics.json.
    """
    out.mkdir(parents=True, exist_ok=True)
    primary = f"ndcg@{ks[0]}"
    summaries = {r.label: r.summary(confidence=confidence, rng=rng) for r in results}
    comparisons = compare_to_best(results, primary, rng=rng)
    document: dict[str, Any] = {
        **header,
        "ks": list(ks),
        "confidence": confidence,
        "split": split.info,
        "models": {
            r.label: {
                "metrics": {
                    **{m: round(s["mean"], 6) for m, s in summaries[r.label].items()},
                    **{m: round(v, 6) for m, v in r.catalog.items()},
                },
                "intervals": {
                    m: [round(s["ci_low"], 6), round(s["ci_high"], 6)]
                    for m, s in summaries[r.label].items()
                },
                "fit_seconds": round(r.fit_seconds, 3),
                "rank_seconds": round(r.rank_seconds, 3),
                "params": _plain(r.model.get_params()),
                **({"notes": _plain(r.notes)} if r.notes else {}),
            }
            for r in results
        },
        "comparisons": [
            {
                "model": c.model,
                "against": c.against,
                "metric": c.test.metric,
                "difference": round(c.test.difference, 6),
                "ci": [round(c.test.ci_low, 6), round(c.test.ci_high, 6)],
                "t_pvalue": c.test.t_pvalue,
                "wilcoxon_pvalue": c.test.wilcoxon_pvalue,
                "holm_pvalue": c.holm_pvalue,
                "n_users": c.test.n_users,
            }
            for c in comparisons
        ],
    }
    (out / "metrics.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    split.train.write_csv(out / "train.csv")
    split.test.write_csv(out / "test.csv")
    if split.fold_in is not None:
        split.fold_in.write_csv(out / "fold_in.csv")
    if validation is not None:
        validation.test.write_csv(out / "validation.csv")
    for r in results:
        _write_recs(out / f"recs-{r.label}.csv", r, split)
    _plot_metrics_vs_k(out / "metrics_vs_k.png", results, ks)
    _plot_popularity(out / "popularity_bias.png", results, split, ks[0])
    (out / "report.md").write_text(
        _markdown(document, results, comparisons, ks, confidence), encoding="utf-8"
    )
    return document


def _plain(value: Any) -> Any:
    """JSON-friendly: models become their repr, numpy scalars plain numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def _write_recs(path: Path, result: ModelResult, split: Split) -> None:
    users = split.train.user_ids[result.users]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "rank"])
        for user, row in zip(users.tolist(), result.recommended, strict=True):
            items = split.train.item_ids[row[row >= 0]].tolist()
            writer.writerows((user, item, rank) for rank, item in enumerate(items, start=1))


def _markdown(
    document: Mapping[str, Any],
    results: Sequence[ModelResult],
    comparisons: Sequence[Comparison],
    ks: Sequence[int],
    confidence: float,
) -> str:
    k0 = ks[0]
    ranked = sorted(results, key=lambda r: -r.mean(f"ndcg@{k0}"))
    lines = [
        "# Offline evaluation",
        "",
        *(f"- **{k}**: {v}" for k, v in document.items() if isinstance(v, str | int | float)),
        "- **split**: " + ", ".join(f"{k} {v}" for k, v in document["split"].items()),
        "",
        f"Full ranking over the catalog, seen items removed. Means over test users with "
        f"{confidence:.0%} bootstrap intervals.",
        "",
    ]
    for k in ks:
        columns = [f"{m}@{k}" for m in _BOARD]
        lines += [f"## Leaderboard @ {k}", ""]
        lines.append("| model | " + " | ".join(columns) + " | coverage | fit s |")
        lines.append("|---" * (len(columns) + 3) + "|")
        models = document["models"]
        for r in ranked:
            entry = models[r.label]
            cells = [
                f"{entry['metrics'][c]:.4f} [{entry['intervals'][c][0]:.4f}, "
                f"{entry['intervals'][c][1]:.4f}]"
                for c in columns
            ]
            coverage = entry["metrics"].get(f"coverage@{k}", float("nan"))
            lines.append(
                f"| {r.label} | " + " | ".join(cells) + f" | {coverage:.3f} | "
                f"{entry['fit_seconds']:.2f} |"
            )
        lines.append("")
    lines += [f"## Beyond accuracy @ {k0}", ""]
    lines.append("| model | " + " | ".join(f"{m}@{k0}" for m in CATALOG_METRICS) + " |")
    lines.append("|---" * (len(CATALOG_METRICS) + 1) + "|")
    for r in ranked:
        cells = [f"{r.catalog.get(f'{m}@{k0}', float('nan')):.4f}" for m in CATALOG_METRICS]
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    lines.append("")
    if comparisons:
        lines += [
            f"## Against the best on ndcg@{k0} (paired, Holm-adjusted)",
            "",
            "| model | vs | difference [CI] | t-test p | Holm p | Wilcoxon p |",
            "|---|---|---|---|---|---|",
        ]
        for c in comparisons:
            t = c.test
            lines.append(
                f"| {c.model} | {c.against} | {t.difference:+.4f} [{t.ci_low:+.4f}, "
                f"{t.ci_high:+.4f}] | {t.t_pvalue:.2g} | {c.holm_pvalue:.2g} | "
                f"{t.wilcoxon_pvalue:.2g} |"
            )
        lines.append("")
    notes = [(r.label, r.notes) for r in results if r.notes]
    if notes:
        lines += ["## Notes", ""]
        for label, note in notes:
            for key, value in note.items():
                lines.append(f"- **{label}** {key}: {value}")
        lines.append("")
    lines += [
        "![metrics vs k](metrics_vs_k.png)",
        "",
        "![popularity bias](popularity_bias.png)",
        "",
        "The exact split (`train.csv`, `validation.csv`, `test.csv`) and every model's lists "
        "(`recs-MODEL.csv`) are beside this file, so the numbers can be checked independently.",
        "",
    ]
    return "\n".join(lines)


def _plot_metrics_vs_k(path: Path, results: Sequence[ModelResult], ks: Sequence[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("ndcg", "recall", "precision", "hit_rate")
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.4))
    grid = sorted(ks)
    for ax, metric in zip(axes, shown, strict=True):
        for index, r in enumerate(results, start=1):
            values = [r.mean(f"{metric}@{k}") for k in grid]
            ax.plot(grid, values, marker="o", label=r.label, color=f"C{index}")
        ax.set_title(metric)
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_popularity(path: Path, results: Sequence[ModelResult], split: Split, k: int) -> None:
    """Left: share of recommendations by item-popularity decile. Right: accuracy vs ARP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = split.train.item_counts
    order = np.argsort(-counts, kind="stable")
    decile = np.empty(len(counts), dtype=np.int64)
    decile[order] = np.arange(len(counts)) * 10 // max(len(counts), 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / (len(results) + 1)
    interactions = np.bincount(decile, weights=counts, minlength=10) / max(counts.sum(), 1)
    left.bar(
        np.arange(10) - 0.4 + width / 2, interactions, width, label="training data", color="C0"
    )
    for index, r in enumerate(results, start=1):
        top = r.recommended[:, :k]
        shown = top[top >= 0]
        share = np.bincount(decile[shown], minlength=10) / max(len(shown), 1)
        left.bar(
            np.arange(10) - 0.4 + width * (index + 0.5),
            share,
            width,
            label=r.label,
            color=f"C{index}",
        )
    left.set_xticks(range(10), [f"{10 * d}-{10 * d + 10}%" for d in range(10)], fontsize=7)
    left.set_xlabel("items by training popularity (most popular first)")
    left.set_ylabel(f"share of top-{k} slots")
    left.legend(fontsize=7)
    for index, r in enumerate(results, start=1):
        point = (r.catalog.get(f"arp@{k}", np.nan), r.mean(f"ndcg@{k}"))
        right.scatter(*point, s=40, color=f"C{index}")
        right.annotate(r.label, point, textcoords="offset points", xytext=(4, 4), fontsize=8)
    right.set_xlabel(f"average recommendation popularity @{k}")
    right.set_ylabel(f"ndcg@{k}")
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
