"""Top-level commands: init, serve, stats and demo."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from penchant.cli.common import (
    DataDir,
    Json,
    Tenant,
    err,
    out,
    print_json,
    settings_for,
)
from penchant.cli.evaluate import print_leaderboard
from penchant.errors import ConfigError
from penchant.jobs.init import init_data_dir
from penchant.jobs.stats import stats as stats_job
from penchant.jobs.store import opened_store
from penchant.settings import ServiceSettings


def init(
    data_dir: DataDir = None,
    show_key: Annotated[
        bool, typer.Option("--show-key", help="Also print a newly created admin key.")
    ] = False,
    json: Json = False,
) -> None:
    """Create the data directory, a commented penchant.toml, the store and an admin key."""
    settings = settings_for(data_dir)
    result = init_data_dir(settings)
    key = result.key if show_key else None
    if json:
        print_json(
            {
                "data_dir": str(result.data_dir),
                "config_file": str(result.config_file),
                "config_created": result.config_created,
                "key_file": str(result.key_file),
                "key_created": result.key_created,
                "key_valid": result.key_valid,
                **({"key": key} if key else {}),
            }
        )
        return
    console = out()
    console.print(f"Data directory: {result.data_dir}")
    made = "created" if result.config_created else "kept (it existed)"
    console.print(f"Config: {result.config_file} {made}")
    if result.key_created:
        console.print(f"Admin key: written to {result.key_file} (readable by you only)")
    else:
        console.print(f"Admin key: {result.key_file} exists, left as it is")
    if not result.key_valid:
        console.print(
            f"[yellow]warning:[/] the key in {result.key_file} does not open this store; "
            "delete the file and run init again for a new one"
        )
    if key:
        console.print(f"Admin key (shown once): {key}", soft_wrap=True)


def serve(
    data_dir: DataDir = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: service.host, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (default: service.port, 8000).", min=1, max=65535),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: service.workers, 1).", min=1)
    ] = None,
) -> None:
    """Serve the HTTP API until stopped."""
    # Imported here: the service pulls in FastAPI, which no other command needs.
    from penchant.service.app import check_bind_safety, run

    settings = settings_for(data_dir)
    changes = {"host": host, "port": port, "workers": workers}
    try:
        service = ServiceSettings.model_validate(
            {**settings.service.model_dump(), **{k: v for k, v in changes.items() if v is not None}}
        )
    except ValidationError as exc:
        raise ConfigError(f"service: {exc.errors()[0]['msg']}") from exc
    settings = settings.model_copy(update={"service": service})
    with opened_store(settings) as store:
        check_bind_safety(service.host, store)
    run(settings)


def stats(data_dir: DataDir = None, tenant: Tenant = None, json: Json = False) -> None:
    """Count events, users and items, and report the quality of the data."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        report = stats_job(store, tenant or settings.tenant)
    if json:
        print_json(report)
        return
    _print_stats(report)


def _print_stats(report: dict[str, Any]) -> None:
    console = out()
    table = Table(title=f"tenant {report['tenant']}", show_header=False, box=None)
    for name in ("events", "users", "items", "sessions", "catalog_items", "catalog_users"):
        table.add_row(name.replace("_", " "), f"{report[name]:,}")
    table.add_row("events with unknown item", f"{report['events_unknown_item']:,}")
    table.add_row("unknown items", f"{report['unknown_items']:,}")
    table.add_row("events without item", f"{report['events_without_item']:,}")
    table.add_row("first event", str(report["first_event"] or "-"))
    table.add_row("last event", str(report["last_event"] or "-"))
    console.print(table)
    if report["by_type"]:
        mix = Table(title="event mix", box=None)
        mix.add_column("type")
        mix.add_column("events", justify="right")
        mix.add_column("share", justify="right")
        for kind, count in report["by_type"].items():
            mix.add_row(kind, f"{count:,}", f"{count / max(report['events'], 1):.1%}")
        console.print(mix)


def demo(
    data_dir: DataDir = None,
    users: Annotated[int, typer.Option(help="Simulated users.", min=1)] = 2_000,
    items: Annotated[int, typer.Option(help="Simulated items.", min=1)] = 1_500,
    days: Annotated[int, typer.Option(help="Days of simulated activity.", min=1)] = 21,
    seed: Annotated[int, typer.Option(help="Random seed of the world.", min=0)] = 7,
    slot_decisions: Annotated[
        int, typer.Option(help="Decisions the demo's content slot learns from (0: no slot).", min=0)
    ] = 3_000,
    ab_users: Annotated[
        int,
        typer.Option(help="Simulated people in the demo's A/B test of pipelines (0: none).", min=0),
    ] = 2_000,
    json: Json = False,
) -> None:
    """Run the demo: a simulated shop, generated and ingested into this data directory."""
    # Imported here: the demo pulls in the world simulator, which no other command needs.
    from penchant.jobs.demo import DEMO_WORLD, run_demo

    settings = settings_for(data_dir)
    config = DEMO_WORLD.model_copy(
        update={"n_users": users, "n_items": items, "days": days, "seed": seed}
    )
    result = run_demo(settings, None if json else err(), config=config)
    if json:
        print_json(
            {
                "data_dir": str(settings.data_dir),
                "world_dir": str(result.world_dir),
                "world": result.world,
                "items": result.items,
                "users": result.users,
                "events": dataclasses.asdict(result.events),
                "stats": result.stats,
                "evaluation": result.evaluation,
                "model_version": result.training.version if result.training else None,
                "seconds": round(result.seconds, 2),
            }
        )
        return
    console = out()
    world, events = result.world, result.events
    console.print(
        f"Simulated a shop: {world['users']:,} users with hidden tastes, {world['items']:,} "
        f"items in {world['categories']} categories, {world['days']} days of activity."
    )
    console.print(
        f"Imported through the regular importers from {result.world_dir}: "
        f"{result.items['stored']:,} items, {result.users['stored']:,} users, "
        f"{events.stored:,} new events ({events.duplicates:,} already stored, "
        f"{events.rejected:,} rejected) in {events.seconds:.1f} s."
    )
    _print_stats(result.stats)
    if result.report_dir is not None:
        console.print(
            "\nTrained and compared recommendation models on the stored events "
            "(newest 20% held out):"
        )
        print_leaderboard(result.evaluation, result.report_dir)
    if result.training is not None:
        console.print(
            f"\nTrained {', '.join(result.training.manifest['models'])} on every event: "
            f"model version {result.training.version}, now active."
        )
        # Imported here: it pulls in the HTTP client, which no other command needs.
        from penchant.cli.showcase import serve_and_show

        serve_and_show(
            settings, result.init.key_file, console, result.world_dir, slot_decisions, ab_users
        )
    key = result.init.key_file
    console.print(
        "\nWhat to try next:\n"
        f"  penchant stats --data-dir {settings.data_dir} --json\n"
        f"  penchant serve --data-dir {settings.data_dir}          # API docs: "
        "http://127.0.0.1:8000/docs\n"
        f'  curl -H "Authorization: Bearer $(cat {key})" '
        "'http://127.0.0.1:8000/v1/recommendations?user_id=u000165&k=5'\n"
        f"The world's true preferences are kept in {result.world_dir / 'truth'} for "
        "measuring engagement lift later."
    )
