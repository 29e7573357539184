"""`penchant experiment ...`: define A/B/n experiments of pipelines; start, ramp and stop them.

A running service sees a change within `experiments.refresh_s` (5 s by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from penchant.cli.common import (
    DataDir,
    Json,
    Tenant,
    out,
    parse_model,
    print_json,
    read_json,
    settings_for,
)
from penchant.evaluation.experiment_report import markdown, write_experiment_report
from penchant.jobs.experiments import (
    delete_experiment,
    get_experiment,
    put_experiment,
    ramp_experiment,
    report_experiment,
    start_experiment,
    stop_experiment,
)
from penchant.jobs.store import opened_store
from penchant.schema.experiments import Experiment

app = typer.Typer(help="A/B/n experiments of pipelines on a surface.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The experiment's id.")]
ExperimentFile = Annotated[
    Path,
    typer.Argument(help="A JSON file: the experiment (id, surface, arms, unit, ramp, holdout)."),
]


@app.command("create")
def create(path: ExperimentFile, tenant: Tenant = None, data_dir: DataDir = None) -> None:
    """Define an experiment from a JSON file, as a draft (or redefine a draft)."""
    settings = settings_for(data_dir)
    experiment = parse_model(Experiment, read_json(path), path.name)
    with opened_store(settings) as store:
        stored = put_experiment(store, tenant or settings.tenant, experiment)
    out().print(f"experiment {stored.id} saved as a draft ({len(stored.arms)} arms)")


@app.command("list")
def list_experiments(tenant: Tenant = None, data_dir: DataDir = None, json: Json = False) -> None:
    """Every experiment, with its surface, status, ramp and arms."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        found = store.experiments.list(tenant or settings.tenant)
    if json:
        print_json([e.model_dump(mode="json") for e in found])
        return
    table = Table()
    for column in ("experiment", "on", "status", "ramp", "arms"):
        table.add_column(column)
    for e in found:
        arms = ", ".join(f"{a.name} ({a.surface or a.policy})" for a in e.arms)
        table.add_row(e.id, e.target, e.status, f"{e.ramp:g}", arms)
    out().print(table)


@app.command("show")
def show(name: Name, tenant: Tenant = None, data_dir: DataDir = None) -> None:
    """An experiment with its history, as JSON."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        found = get_experiment(store, tenant or settings.tenant, name)
    print_json(found.model_dump(mode="json"))


@app.command("start")
def start(name: Name, tenant: Tenant = None, data_dir: DataDir = None) -> None:
    """Start serving an experiment's arms (its arms' surfaces must be configured)."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        started = start_experiment(store, settings, tenant or settings.tenant, name)
    out().print(f"experiment {name} running on {started.target}, ramp {started.ramp:g}")


@app.command("ramp")
def ramp(
    name: Name,
    share: Annotated[float, typer.Argument(help="The share of units that enter, 0 to 1.")],
    tenant: Tenant = None,
    data_dir: DataDir = None,
) -> None:
    """Set the share of units in the experiment; raising it only adds units."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        ramp_experiment(store, tenant or settings.tenant, name, share)
    out().print(f"experiment {name}: ramp {share:g}")


@app.command("stop")
def stop(name: Name, tenant: Tenant = None, data_dir: DataDir = None) -> None:
    """Stop serving an experiment's arms."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        stop_experiment(store, tenant or settings.tenant, name)
    out().print(f"experiment {name} stopped")


@app.command("delete")
def delete(name: Name, tenant: Tenant = None, data_dir: DataDir = None) -> None:
    """Delete an experiment that is not running (its logged exposures stay)."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        delete_experiment(store, tenant or settings.tenant, name)
    out().print(f"experiment {name} deleted")


@app.command("report")
def report(
    name: Name,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write report.json, report.md and lift.png here."),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    segment_by: Annotated[
        str,
        typer.Option("--segment-by", help="`device`, or a user attribute to segment by."),
    ] = "device",
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Each metric per arm with its lift over the control, interval, p-value and verdict,
    from the event log."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        found = report_experiment(
            store, tenant or settings.tenant, name, alpha=alpha, segment_by=segment_by
        )
    if output is not None:
        written = write_experiment_report(found, output)
        if not json:
            out().print(f"wrote {', '.join(p.name for p in written)} to {output}")
    if json:
        print_json(found)
    else:
        out().print(markdown(found))
