"""The fairness audit's report: audit.json, audit.md and the trade-off curves as PNG."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from penchant.jobs.fairness_audit import best_setting

#: The fairness metrics drawn against accuracy, and which way is better for each.
TRADE_OFFS = {
    "arp": "lower",
    "ild": "higher",
    "long_tail_share": "higher",
    "coverage": "higher",
    "miscalibration": "lower",
    "exposure_disparity": "lower",
}


def write_audit(
    output: Path, rows: Sequence[dict[str, Any]], k: int, header: dict[str, Any]
) -> dict[str, Any]:
    """Write audit.json (the rows), audit.md (the summary and tables) and one PNG per
    trade-off (`tradeoff-METRIC.png`: NDCG@k against the metric, a curve per re-ranker).

    Returns:
        The summary: the baseline, and the setting that cuts ARP by 30% or more for at most
        5% of NDCG@k (None when no setting does).
    """
    output.mkdir(parents=True, exist_ok=True)
    (output / "audit.json").write_text(json.dumps(list(rows), indent=1) + "\n")
    best = best_setting(rows, k)
    base = next(r for r in rows if r["reranker"] == "none")
    summary = {**header, "baseline": base["metrics"], "best_arp_setting": best}
    (output / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for metric in TRADE_OFFS:
        _plot(output / f"tradeoff-{metric}.png", rows, k, metric)
    (output / "audit.md").write_text(_markdown(rows, k, header, best))
    return summary


def _plot(path: Path, rows: Sequence[dict[str, Any]], k: int, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = next(r for r in rows if r["reranker"] == "none")["metrics"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name in dict.fromkeys(r["reranker"] for r in rows if r["reranker"] != "none"):
        ours = sorted((r for r in rows if r["reranker"] == name), key=lambda r: r["strength"])
        mine = [base] + [r["metrics"] for r in ours]
        ax.plot([m[metric] for m in mine], [m[f"ndcg@{k}"] for m in mine], marker="o", label=name)
    ax.scatter([base[metric]], [base[f"ndcg@{k}"]], color="black", zorder=3, label="none")
    if metric == "arp":  # the target: 30% less ARP for at most 5% of NDCG
        ax.axvline(0.7 * base["arp"], color="grey", linestyle="--", linewidth=0.8)
        ax.axhline(0.95 * base[f"ndcg@{k}"], color="grey", linestyle="--", linewidth=0.8)
        ax.fill_betweenx(
            [0.95 * base[f"ndcg@{k}"], 1.02 * base[f"ndcg@{k}"]],
            0,
            0.7 * base["arp"],
            color="green",
            alpha=0.08,
            label="-30% ARP, at most -5% NDCG",
        )
        ax.set_xlim(left=0)
    ax.set_xlabel(f"{metric} ({TRADE_OFFS[metric]} is better)")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title(f"Accuracy against {metric}, each re-ranker from strength 0 up")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _markdown(
    rows: Sequence[dict[str, Any]], k: int, header: dict[str, Any], best: dict[str, Any] | None
) -> str:
    base = next(r for r in rows if r["reranker"] == "none")["metrics"]
    ndcg = f"ndcg@{k}"
    lines = [
        f"# Fairness audit: {header.get('model')} on {header.get('dataset')}",
        "",
        f"Protocol {header.get('protocol')}, seed {header.get('seed')}; each re-ranker reorders "
        f"the model's top {header.get('candidates')} candidates, and the top {k} is judged.",
        "",
        "## Where the pipeline stands",
        "",
    ]
    lines += _plain_summary(base, best, k)
    lines += [
        f"- {row['reranker']} at strength {row['strength']:g}, {row['found_by']} (found by "
        f'bisection; marked "found" below), costs '
        f"{100 * (1 - row['metrics'][ndcg] / base[ndcg]):.1f}% of NDCG@{k}."
        for row in rows
        if "found_by" in row
    ]
    columns = [ndcg, "arp", "coverage", "ild", "long_tail_share", "miscalibration",
               "exposure_disparity", "ndcg_gap_by_activity"]  # fmt: skip
    lines += ["", "## Every setting", "", "| re-ranker | strength | " + " | ".join(columns) + " |"]
    lines.append("| --- | ---: |" + " ---: |" * len(columns))
    for row in rows:
        m = row["metrics"]
        cells = " | ".join(f"{m[c]:.4g}" for c in columns)
        lines.append(f"| {_name(row)} | {row['strength']:g} | {cells} |")
    lines += ["", "## Exposure of head and tail items (position-discounted) against relevance", ""]
    lines.append(
        "| re-ranker | strength | head exposure | head relevance | tail exposure | tail relevance |"
    )
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        g = row["groups"]["items"]
        lines.append(
            f"| {_name(row)} | {row['strength']:g} | {g['head']['exposure_share']:.3f} | "
            f"{g['head']['relevance_share']:.3f} | {g['tail']['exposure_share']:.3f} | "
            f"{g['tail']['relevance_share']:.3f} |"
        )
    lines += ["", "## Trade-off curves", ""]
    lines += [f"![NDCG against {m}](tradeoff-{m}.png)" for m in TRADE_OFFS]
    return "\n".join(lines) + "\n"


def _name(row: dict[str, Any]) -> str:
    return f"{row['reranker']} (found)" if "found_by" in row else str(row["reranker"])


def _plain_summary(base: dict[str, float], best: dict[str, Any] | None, k: int) -> list[str]:
    ndcg = f"ndcg@{k}"
    out = [
        f"- Without re-ranking: NDCG@{k} {base[ndcg]:.4f}; the average recommended item was "
        f"taken by {base['arp']:.1f} people (ARP); {100 * base['long_tail_share']:.1f}% of the "
        f"slots hold long-tail items; the lists cover {100 * base['coverage']:.1f}% of the "
        f"catalog.",
        f"- Their category mix diverges from people's histories by {base['miscalibration']:.3f} "
        f"(KL; 0 is calibrated), and light users get NDCG {base['ndcg_gap_by_activity']:.3f} "
        "apart from heavy ones (the gap across activity terciles).",
    ]
    if best is None:
        out.append(
            "- No setting cut ARP by 30% or more while keeping NDCG within 5% of the lists "
            "without re-ranking."
        )
    else:
        out.append(
            f"- {best['reranker']} at strength {best['strength']:g} cuts ARP by "
            f"{100 * best['arp_cut']:.1f}% for {100 * best['ndcg_loss']:.1f}% of NDCG@{k}."
        )
    return out
