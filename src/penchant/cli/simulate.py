"""`penchant simulate`: an A/B test of pipelines with simulated people, through the real service."""

from __future__ import annotations

import secrets
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from penchant.cli.ab_simulation import (
    PERSONALIZED,
    AbSetup,
    print_ab,
    run_ab,
    summary,
    with_arm_surfaces,
)
from penchant.cli.common import DataDir, Json, err, out, print_json, settings_for
from penchant.client import Client
from penchant.errors import InvalidInput
from penchant.ingest.world import World
from penchant.jobs.experiments import report_experiment
from penchant.jobs.store import settings_store
from penchant.schema.common import utcnow
from penchant.service.process import free_port, start_server
from penchant.settings import Settings, settings_environment


def simulate(
    arms: Annotated[
        str,
        typer.Option(
            help="Comma-separated arms, the control first: configured surfaces, `popular` "
            "(most popular items) or `personalized` (the default pipeline)."
        ),
    ] = "popular,personalized",
    users: Annotated[
        int, typer.Option(help="Simulated people, split between the arms.", min=2)
    ] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of the world and of the people's reactions.")] = 0,
    visits: Annotated[
        int, typer.Option(help="Lists each person asks for, one a day.", min=1, max=60)
    ] = 2,
    k: Annotated[int, typer.Option(help="Items per list.", min=1, max=100)] = 10,
    interleave: Annotated[
        bool,
        typer.Option(
            "--interleave", help="Team-draft interleaving of two arms instead of an A/B split."
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the full report (report.json, report.md, lift.png) here."),
    ] = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Run an A/B test of pipelines on a simulated shop through the real service, and print
    each arm's impressions, clicks and CTR, and each arm's CTR lift over the first with its
    95% interval and p-value.

    Without --data-dir the shop is generated (from --seed) in a temporary directory and
    models are trained on it; with one, its trained models and its world (from `penchant
    demo`, or an earlier run) are used.
    """
    names = tuple(a.strip() for a in arms.split(",") if a.strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise InvalidInput("--arms: give at least two distinct arms", field="arms")
    if interleave and len(names) != 2:
        raise InvalidInput("--arms: interleaving compares exactly two arms", field="arms")
    kind = "interleaving" if interleave else "ab"
    console = None if json else err()
    if data_dir is None:
        with tempfile.TemporaryDirectory(prefix="penchant-simulate-") as tmp:
            result = _run(
                settings_for(Path(tmp)), names, users, seed, visits, k, kind, console, output
            )
    else:
        result = _run(settings_for(data_dir), names, users, seed, visits, k, kind, console, output)
    if json:
        print_json(result)
    else:
        print_ab(out(), result, names)


def _run(
    settings: Settings,
    arms: tuple[str, ...],
    users: int,
    seed: int,
    visits: int,
    k: int,
    kind: str,
    console: Console | None,
    output: Path | None,
) -> dict[str, Any]:
    world = _world(settings, max(users, 2_000), seed, console)
    if users > len(world.arrays.user_ids):
        raise InvalidInput(
            f"--users: the world has {len(world.arrays.user_ids):,} people", field="users"
        )
    settings = with_arm_surfaces(settings, arms)
    unknown = [a for a in arms if a not in settings.surfaces and a != PERSONALIZED]
    if unknown:
        raise InvalidInput(
            f"--arms: no surface {unknown[0]!r} is configured; configured: "
            f"{', '.join(sorted(settings.surfaces)) or 'none'} (and popular, personalized)",
            field="arms",
        )
    name = f"simulated-{utcnow():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    setup = AbSetup(
        arms=arms, users=users, visits=visits, k=k, seed=seed, experiment=name, kind=kind
    )
    served = serve_ab(settings, world, setup, console)
    store = settings_store(settings)
    try:
        # reactions are timed a few minutes after their list: read the log beyond now
        report = report_experiment(
            store, settings.tenant, name, until=utcnow() + timedelta(days=visits + 1)
        )
    finally:
        store.close()
    if output is not None:
        from penchant.evaluation.experiment_report import write_experiment_report

        write_experiment_report(report, output)
    return {"users": users, "seed": seed, **served, **summary(report, arms)}


def serve_ab(
    settings: Settings, world: World, setup: AbSetup, console: Console | None
) -> dict[str, Any]:
    """Start the service on a free loopback port, run the test through it, stop it (its
    impression log is flushed on the way out)."""
    port = free_port()
    log = settings.data_dir / "simulate-server.log"
    server = start_server(settings.data_dir, port, env=settings_environment(settings), log=log)
    try:
        with Client(f"http://127.0.0.1:{port}", settings.key_file.read_text().strip()) as client:
            return run_ab(client, world, settings, setup, console)
    finally:
        server.terminate()
        server.wait(timeout=60)


def _world(settings: Settings, n_users: int, seed: int, console: Console | None) -> World:
    """The data directory's world, or a new one stored and trained on."""
    for saved in (settings.data_dir / "world", settings.data_dir / "demo-world" / "truth"):
        if (saved / "world.json").exists():
            return World.load(saved)
    # Imported here: generating a world pulls in the simulator, training the models.
    from penchant.jobs.demo import DEMO_WORLD
    from penchant.jobs.simulate import prepare_world

    config = DEMO_WORLD.model_copy(update={"n_users": n_users, "seed": seed})
    return prepare_world(settings, config, console)[1]
