"""An experiment's report: each metric per arm, its lift over the control, and a verdict.

Every metric is compared at the unit of randomization (`penchant.evaluation.engagement`):

| metric | per arm | test |
| --- | --- | --- |
| `ctr` | clicks / impressions, summed over units | delta method over units, z-test |
| `conversion_rate` | share of units that bought or converted | two-proportion z-test |
| `revenue_per_user` | mean revenue per unit | Welch's t-test |
| `dwell_per_user` | mean dwell seconds per unit | Welch's t-test |
| `items_per_session` | items consumed / sessions, summed over units | delta method |
| `return_d1`, `return_d7` | share of units active on day 1 (7) after exposure | two proportions |
| `dismissal_rate` | dismissals / impressions | delta method |

p-values are Holm-corrected across the metrics of each arm; a verdict is `better` or `worse`
(by the metric's direction: fewer dismissals is better) when the corrected p-value is below
alpha, else `no detectable difference`. A sample ratio mismatch (units per arm far from the
planned split, p < 0.001) marks every verdict untrustworthy. Each comparison also carries an
always-valid p-value (mSPRT over the units in order of arrival) that may be looked at at any
time; for the ratio metrics it tests the mean per-unit ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from penchant.errors import InvalidInput
from penchant.evaluation.engagement import HOLDOUT, FloatArray, UnitTable
from penchant.experiments.abtest import (
    Comparison,
    cuped,
    ratio_metric,
    two_proportions,
    welch,
)
from penchant.experiments.sequential import ArmTotals, msprt
from penchant.experiments.validity import holm, sample_ratio_mismatch, srm_suspected
from penchant.schema.experiments import Experiment


@dataclass(frozen=True)
class Metric:
    """How one metric is computed per arm and compared.

    Attributes:
        name: its name in reports.
        kind: `ratio` (numerator / denominator columns), `proportion` (a 0/1 column, NaN
            where unobserved) or `mean` (a column).
        columns: the unit-table columns it reads.
        higher_is_better: its direction, for verdicts.
        covariate: the unit-table column of the same outcome before the experiment, for a
            CUPED-adjusted comparison beside the plain one (means and proportions only).
    """

    name: str
    kind: str
    columns: tuple[str, ...]
    higher_is_better: bool = True
    covariate: str | None = None

    def value(self, m: dict[str, FloatArray]) -> float:
        """The arm's value of the metric."""
        if self.kind == "ratio":
            den = float(m[self.columns[1]].sum())
            return float(m[self.columns[0]].sum()) / den if den > 0 else float("nan")
        column = m[self.columns[0]]
        kept = column[~np.isnan(column)]
        return float(kept.mean()) if kept.size else float("nan")

    def compare(
        self, a: dict[str, FloatArray], b: dict[str, FloatArray], *, alpha: float
    ) -> Comparison:
        """B against A."""
        if self.kind == "ratio":
            num, den = self.columns
            return ratio_metric(a[num], a[den], b[num], b[den], alpha=alpha)
        ya, yb = a[self.columns[0]], b[self.columns[0]]
        if self.kind == "proportion":
            ya, yb = ya[~np.isnan(ya)], yb[~np.isnan(yb)]
            return two_proportions(int(ya.sum()), ya.size, int(yb.sum()), yb.size, alpha=alpha)
        return welch(ya, yb, alpha=alpha)

    def per_unit(self, m: dict[str, FloatArray]) -> FloatArray:
        """Per-unit values in arrival order (the sequential test's stream)."""
        if self.kind == "ratio":
            num, den = (m[c] for c in self.columns)
            return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        column = m[self.columns[0]]
        return column[~np.isnan(column)]


METRICS: tuple[Metric, ...] = (
    Metric("ctr", "ratio", ("clicks", "impressions")),
    Metric("conversion_rate", "proportion", ("converted",), covariate="pre_converted"),
    Metric("revenue_per_user", "mean", ("revenue",), covariate="pre_revenue"),
    Metric("dwell_per_user", "mean", ("dwell_s",), covariate="pre_dwell_s"),
    Metric("items_per_session", "ratio", ("consumed", "sessions")),
    Metric("return_d1", "proportion", ("returned_d1",)),
    Metric("return_d7", "proportion", ("returned_d7",)),
    Metric("dismissal_rate", "ratio", ("dismissals", "impressions"), higher_is_better=False),
)


#: The metrics of an experiment on a slot (`penchant.evaluation.engagement.slot_units`).
SLOT_METRICS: tuple[Metric, ...] = (
    Metric("reward_per_decision", "ratio", ("reward", "decisions")),
    Metric("rewarded_share", "ratio", ("rewarded", "decisions")),
    Metric("reward_per_user", "mean", ("reward",)),
)

#: Unit-table columns whose sums per arm the report lists (those the table has).
TOTALS = (
    "impressions",
    "clicks",
    "dismissals",
    "converted",
    "revenue",
    "consumed",
    "decisions",
    "reward",
    "rewarded",
)


def _rows(table: UnitTable, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> dict[str, FloatArray]:
    return {name: values[mask] for name, values in table.metrics.items()}


def _safe(compare: Callable[..., Comparison], *args: Any, alpha: float) -> Comparison | None:
    """A comparison, or None where an arm has too few units for it."""
    try:
        return compare(*args, alpha=alpha)
    except InvalidInput:  # too few units, or none with a variance: nothing to report
        return None


def compare_table(
    table: UnitTable,
    experiment: Experiment,
    *,
    alpha: float = 0.05,
    mask: np.ndarray[Any, np.dtype[np.bool_]] | None = None,
    sequential: bool = True,
    metrics: tuple[Metric, ...] = METRICS,
) -> dict[str, Any]:
    """Every metric per arm and each arm against the control (see the module docstring).

    Args:
        table: the experiment's units.
        experiment: the experiment (its arms, the first is the control).
        alpha: the significance level and one minus the intervals' coverage.
        mask: the rows to use (a segment); all by default.
        sequential: whether to add the always-valid p-values.
        metrics: the metrics compared (`SLOT_METRICS` for an experiment on a slot).

    Returns:
        `{"units": {arm: n}, "totals": {arm: {column: sum}}, "metrics": [{"metric",
        "values": {arm: value}, "comparisons": {arm: {... Comparison, "p_value_holm",
        "verdict", "always_valid_p"}}}]}`.
    """
    keep = np.ones(len(table.units), bool) if mask is None else mask
    arms = {a.name: _rows(table, keep & table.arm(a.name)) for a in experiment.arms}
    control = experiment.control.name
    rows: list[dict[str, Any]] = []
    for metric in metrics:
        values = {name: metric.value(m) for name, m in arms.items()}
        comparisons: dict[str, Any] = {}
        for arm in experiment.arms[1:]:
            found = _safe(metric.compare, arms[control], arms[arm.name], alpha=alpha)
            if found is None:
                continue
            entry: dict[str, Any] = dict(found.as_dict())
            if metric.covariate is not None and metric.covariate in arms[control]:
                entry["cuped"] = _cuped(metric, arms[control], arms[arm.name], alpha)
            if sequential:
                entry["always_valid_p"] = _always_valid(
                    metric, arms[control], arms[arm.name], alpha
                )
            comparisons[arm.name] = entry
        rows.append({"metric": metric.name, "values": values, "comparisons": comparisons})
    for arm in experiment.arms[1:]:
        compared = [m for m in rows if arm.name in m["comparisons"]]
        raw = [m["comparisons"][arm.name]["p_value"] for m in compared]
        usable = [p if p is not None else 1.0 for p in raw]
        for m, adjusted in zip(compared, holm(usable) if usable else [], strict=True):
            entry = m["comparisons"][arm.name]
            entry["p_value_holm"] = adjusted
            better = next(x for x in metrics if x.name == m["metric"]).higher_is_better
            entry["verdict"] = _verdict(entry["lift"], entry["difference"], adjusted, alpha, better)
    return {
        "units": {name: len(next(iter(m.values()))) for name, m in arms.items()},
        "totals": {
            name: {c: float(np.nansum(m[c])) for c in TOTALS if c in m} for name, m in arms.items()
        },
        "metrics": rows,
    }


def _cuped(
    metric: Metric, a: dict[str, FloatArray], b: dict[str, FloatArray], alpha: float
) -> dict[str, Any] | None:
    """The CUPED-adjusted comparison (its p-value and intervals, theta and the variance
    reduction), or None when the covariate does not vary or an arm is too small."""
    column, covariate = metric.columns[0], str(metric.covariate)
    xa, xb = a[covariate], b[covariate]
    if np.ptp(np.concatenate([xa, xb])) == 0:
        return None
    try:
        return cuped(a[column], xa, b[column], xb, alpha=alpha).as_dict()
    except InvalidInput:
        return None


def _verdict(
    lift: float | None, difference: float | None, p: float, alpha: float, higher_is_better: bool
) -> str:
    if p >= alpha or difference is None:
        return "no detectable difference"
    up = difference > 0
    return "better" if up == higher_is_better else "worse"


def _always_valid(
    metric: Metric, a: dict[str, FloatArray], b: dict[str, FloatArray], alpha: float
) -> float | None:
    """The always-valid p-value of the per-unit stream, looked at after every unit pair."""
    ya, yb = metric.per_unit(a), metric.per_unit(b)
    looks = min(ya.size, yb.size)
    if looks < 30:
        return None
    scale = abs(float(np.mean(ya))) or float(np.std(ya)) or 1.0
    test = msprt(_totals(ya[:looks]), _totals(yb[:looks]), tau=0.1 * scale, alpha=alpha)
    return float(test.p_values[-1])


def _totals(values: FloatArray) -> ArmTotals:
    n = np.arange(1, values.size + 1)
    return ArmTotals(n=n, total=np.cumsum(values), total_sq=np.cumsum(values * values))


def experiment_report(
    table: UnitTable,
    experiment: Experiment,
    *,
    alpha: float = 0.05,
    metrics: tuple[Metric, ...] = METRICS,
) -> dict[str, Any]:
    """The whole report: the sample-ratio check, every metric overall and per segment, and
    the units of the long-term holdout.

    Returns:
        A JSON-ready dict (see `compare_table` for its metric part).
    """
    counts = [int(table.arm(a.name).sum()) for a in experiment.arms]
    srm: dict[str, Any] = {
        "units": dict(zip((a.name for a in experiment.arms), counts, strict=True))
    }
    if sum(counts) > 0:
        chi2, p = sample_ratio_mismatch(counts, [a.weight for a in experiment.arms])
        srm.update(chi2=chi2, p_value=p, suspected=srm_suspected(p))
    overall = compare_table(table, experiment, alpha=alpha, metrics=metrics)
    if srm.get("suspected"):
        for m in overall["metrics"]:
            for entry in m["comparisons"].values():
                entry["verdict"] = "untrustworthy: sample ratio mismatch"
    segments = {
        str(s): compare_table(
            table,
            experiment,
            alpha=alpha,
            mask=table.segments == s,
            sequential=False,
            metrics=metrics,
        )
        for s in sorted(set(table.segments.tolist()))
    }
    return {
        "experiment": experiment.id,
        "surface": experiment.target,
        "unit": experiment.unit,
        "control": experiment.control.name,
        "start": table.start.isoformat(),
        "end": table.end.isoformat(),
        "alpha": alpha,
        "sample_ratio": srm,
        "holdout_units": int(table.arm(HOLDOUT).sum()),
        **overall,
        "segments": segments,
        "lift_over_time": lift_over_time(table, experiment, alpha=alpha),
    }


def lift_over_time(
    table: UnitTable, experiment: Experiment, *, alpha: float = 0.05
) -> dict[str, list[dict[str, Any]]]:
    """Each arm's CTR lift over the control on the data up to the end of each day (for an
    experiment on a slot: the lift of its share of decisions that earned a reward).

    Returns:
        `{arm: [{"day", "lift", "ci": [lo, hi], "p_value"}, ...]}` for every day that
        showed anything, once both arms had impressions.
    """
    shown = np.cumsum(table.daily_impressions, axis=1)
    clicked = np.cumsum(table.daily_clicks, axis=1)
    control = table.arm(experiment.control.name)
    out: dict[str, list[dict[str, Any]]] = {}
    for arm in experiment.arms[1:]:
        rows = table.arm(arm.name)
        series = []
        for day in range(shown.shape[1]):
            if not table.daily_impressions[:, day].any():
                continue  # nothing new was shown that day
            a = control & (shown[:, day] > 0)
            b = rows & (shown[:, day] > 0)
            found = _safe(
                ratio_metric,
                clicked[a, day],
                shown[a, day],
                clicked[b, day],
                shown[b, day],
                alpha=alpha,
            )
            if found is not None:
                d = found.as_dict()
                series.append(
                    {"day": day, "lift": d["lift"], "ci": d["lift_ci"], "p_value": d["p_value"]}
                )
        out[arm.name] = series
    return out


def write_experiment_report(report: dict[str, Any], output: Path) -> list[Path]:
    """Write `report.json`, `report.md` and `lift.png` (CTR lift over time with its
    interval band, one line per arm) under `output`; return their paths."""
    output.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = output / "report.json", output / "report.md", output / "lift.png"
    if report.get("kind") == "interleaving":  # a preference, not lifts over time
        json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        md_path.write_text(markdown(report), encoding="utf-8")
        return [json_path, md_path]
    json_path.write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    md_path.write_text(markdown(report), encoding="utf-8")
    _plot_lift(png_path, report)
    return [json_path, md_path, png_path]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}%"


def _number(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4g}"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the split check, then one table row per metric and arm (for
    an interleaving experiment, its preference)."""
    if report.get("kind") == "interleaving":
        return _interleaving_markdown(report)
    srm = report["sample_ratio"]
    lines = [
        f"# Experiment `{report['experiment']}` on surface `{report['surface']}`",
        "",
        f"From {report['start']} to {report['end']}; unit: {report['unit']}; control: "
        f"`{report['control']}`; alpha {report['alpha']}.",
        "",
        "Units per arm: "
        + ", ".join(f"{arm} {n:,}" for arm, n in srm["units"].items())
        + (
            f" (sample ratio check p = {srm['p_value']:.3g}"
            + (": **mismatch, results untrustworthy**" if srm.get("suspected") else "")
            + ")"
            if "p_value" in srm
            else ""
        )
        + f"; long-term holdout {report['holdout_units']:,}.",
        "",
        "| metric | arm | control value | arm value | lift | 95% interval | p (Holm) | verdict |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for m in report["metrics"]:
        for arm, c in m["comparisons"].items():
            low, high = c["lift_ci"]
            lines.append(
                f"| {m['metric']} | {arm} | {_number(c['control'])} | {_number(c['treatment'])} | "
                f"{_percent(c['lift'])} | [{_percent(low)}, {_percent(high)}] | "
                f"{_number(c.get('p_value_holm'))} | {c.get('verdict', '')} |"
            )
    return "\n".join(lines) + "\n"


def _interleaving_markdown(report: dict[str, Any]) -> str:
    low, high = report["delta_ci"]
    wins = ", ".join(f"{arm} {n:,}" for arm, n in report["wins"].items())
    return (
        f"# Interleaving experiment `{report['experiment']}` on surface `{report['surface']}`\n\n"
        f"From {report['start']} to {report['end']}: {report['lists']:,} interleaved lists "
        f"shown to {report['units']:,} units. Lists won: {wins}; {report['ties']:,} ties or "
        f"without clicks.\n\n"
        f"Preference for `{report['treatment']}` over `{report['control']}`: delta "
        f"{_number(report['delta'])} (95% interval {_number(low)} to {_number(high)}), sign "
        f"test p = {_number(report['p_value'])}: **{report['verdict']}**.\n"
    )


def _plot_lift(path: Path, report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for arm, series in report["lift_over_time"].items():
        days = [p["day"] + 1 for p in series if p["lift"] is not None]
        lift = [100 * p["lift"] for p in series if p["lift"] is not None]
        low = [
            100 * (p["ci"][0] if p["ci"][0] is not None else np.nan)
            for p in series
            if p["lift"] is not None
        ]
        high = [
            100 * (p["ci"][1] if p["ci"][1] is not None else np.nan)
            for p in series
            if p["lift"] is not None
        ]
        (line,) = ax.plot(days, lift, marker="o", label=f"{arm} vs {report['control']}")
        ax.fill_between(days, low, high, color=line.get_color(), alpha=0.2)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # days are whole
    ax.set_xlabel("day of the experiment (data up to its end)")
    rate = "CTR" if report["metrics"][0]["metric"] == "ctr" else "rewarded decisions"
    ax.set_ylabel(f"{rate} lift over the control, % (95% interval)")
    ax.set_title(f"Experiment {report['experiment']}: cumulative lift of {rate}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
