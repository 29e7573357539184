"""`penchant privacy report`: differentially private engagement per segment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from penchant.cli.common import DataDir, Json, Tenant, out, print_json, settings_for
from penchant.errors import InvalidInput
from penchant.jobs.dp_report import engagement_report


def report(
    by: Annotated[
        str,
        typer.Option("--by", help="The user attribute whose value is each user's segment."),
    ],
    segments: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated public segment names to report (default: the names found "
            "in the data, which are then not protected).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="First instant counted, ISO 8601 (UTC when no offset).", show_default=False
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="First instant not counted, ISO 8601.", show_default=False),
    ] = None,
    epsilon: Annotated[
        float | None,
        typer.Option(
            help="Privacy loss of this report (default: privacy.dp_epsilon).", show_default=False
        ),
    ] = None,
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Release users, impressions, clicks and CTR per segment with differential privacy.

    Each report spends its epsilon from the tenant's budget per window
    (privacy.dp_budget per privacy.dp_window_s); one that would overspend is refused.
    """
    settings = settings_for(data_dir)
    names = [s.strip() for s in segments.split(",") if s.strip()] if segments else None
    result = engagement_report(
        settings,
        tenant or settings.tenant,
        by=by,
        since=_instant(since, "--since"),
        until=_instant(until, "--until"),
        epsilon=epsilon,
        segments=names,
    )
    if json:
        print_json(result)
    else:
        _print(result)


def _instant(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} {value!r}: expected an ISO 8601 date or time") from None


def _print(result: dict[str, Any]) -> None:
    budget = result["budget"]
    table = Table("segment", "users", "impressions", "clicks", "CTR")
    for row in result["segments"]:
        ctr = "" if row["ctr"] is None else f"{row['ctr']:.2%}"
        table.add_row(
            row["segment"], str(row["users"]), str(row["impressions"]), str(row["clicks"]), ctr
        )
    console = out()
    console.print(
        f"Engagement by {result['by']} for tenant {result['tenant']}: epsilon "
        f"{result['epsilon']:g}, Laplace noise scale {result['noise_scale']:g} per count"
    )
    console.print(table)
    console.print(
        f"Budget: {budget['spent']:g} of {budget['total']:g} spent in the last "
        f"{budget['window_s']:g} s, {budget['left']:g} left."
    )
