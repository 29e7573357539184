"""`penchant privacy retention`: delete events older than their type's retention, with counts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from penchant.cli.common import DataDir, Json, Tenant, err, out, print_json, settings_for
from penchant.jobs.retention import DEFAULT_BATCH_SIZE, RetentionReport, run_retention


def retention(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, hidden=True, help="Rows deleted per committed transaction."
        ),
    ] = DEFAULT_BATCH_SIZE,
) -> None:
    """Delete events kept longer than privacy.retention_days allows, and print the counts.

    Safe to interrupt: what was deleted stays deleted, and the next run finishes the job.
    """
    settings = settings_for(data_dir)
    if not settings.privacy.retention_days:
        note = (
            "No retention is configured (privacy.retention_days in penchant.toml): "
            "every event is kept until erased."
        )
        if json:
            print_json(run_retention(settings, tenant, dry_run=dry_run).as_json())
            err().print(note)
        else:
            out().print(note)
        return
    if json:
        report = run_retention(settings, tenant, dry_run=dry_run, batch_size=batch_size)
        print_json(report.as_json())
        return
    with err().status("retention") as status:
        report = run_retention(
            settings, tenant, dry_run=dry_run, batch_size=batch_size, progress=status.update
        )
    _print(report)


def _print(report: RetentionReport) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    table = Table(title=f"Retention of tenant {report.tenant}{' (dry run)' * report.dry_run}")
    for name in ("type", "rule", "days", "before", verb):
        table.add_column(name, justify="right" if name in ("days", verb) else "left")
    for line in report.lines:
        table.add_row(
            line.type,
            line.rule,
            f"{line.days:g}",
            f"{line.cutoff:%Y-%m-%d %H:%M} UTC",
            f"{line.deleted:,}",
        )
    console = out()
    console.print(table)
    plural = "" if report.deleted == 1 else "s"
    console.print(f"{report.deleted:,} event{plural} {verb} in all.")
