"""`penchant bandits simulate`: regret of every bandit policy on a simulated slot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from penchant.cli.common import Json, err, out, print_json
from penchant.errors import InvalidInput
from penchant.jobs.bandit_sim import POLICIES, policy_names, save_report, simulate_regret

app = typer.Typer(help="Bandit policies: simulate and compare them.", no_args_is_help=True)


@app.command("simulate")
def simulate(
    decisions: Annotated[int, typer.Option(min=100, help="Decisions per policy.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Seed of the world, requests and clicks.")] = 0,
    policies: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated policies (default: {','.join(POLICIES)})."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write regret.json and regret.png here.")
    ] = None,
    json: Json = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run each policy on the same simulated requests and report its cumulative regret
    against an oracle that knows every person's true preferences."""
    names = policy_names(policies)
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        raise InvalidInput(
            f"unknown policy {unknown[0] if unknown else '(none)'!r}; "
            f"choose from {', '.join(POLICIES)}",
            field="policies",
        )
    chosen = {n: POLICIES[n] for n in names}
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err(),
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task("decisions", total=decisions * len(chosen))
        report = simulate_regret(
            decisions, seed=seed, policies=chosen, progress=lambda n: bar.advance(task, n)
        )
    written = save_report(report, output) if output is not None else []
    summary = report.summary()
    if json:
        print_json(summary)
        return
    table = Table(title=f"{decisions:,} decisions, seed {seed}, oracle CTR {report.oracle_ctr:.4f}")
    for column in ("policy", "regret", "vs epsilon-greedy", "CTR", "chose best", "seconds"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in summary["runs"]:
        versus = row.get("regret_vs_epsilon_greedy")
        table.add_row(
            row["policy"],
            f"{row['regret']:,.1f}",
            "" if versus is None else f"{versus:+.1%}",
            f"{row['ctr']:.4f}",
            f"{row['chose_best']:.1%}",
            f"{row['seconds']:.1f}",
        )
    console = out()
    console.print(table)
    for path in written:
        console.print(f"wrote {path}")
