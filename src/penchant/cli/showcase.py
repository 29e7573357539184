"""The end of the demo: the real service answers for a few simulated people, live."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from penchant.cli.ab_simulation import AbSetup, print_ab, run_ab, summary, with_arm_surfaces
from penchant.cli.showcase_slot import WARMUP, show_slot
from penchant.client import Client, Recommendations
from penchant.ingest.world import World
from penchant.jobs.experiments import report_experiment
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import settings_store
from penchant.schema.common import utcnow
from penchant.service.process import free_port, start_server
from penchant.settings import Settings, settings_environment

#: How many simulated people the demo asks recommendations for.
PEOPLE = 3
#: The demo's A/B test: its arms (the control first) and its simulated people.
AB_ARMS = ("popular", "personalized")
AB_USERS = 2_000


def serve_and_show(
    settings: Settings,
    key_file: Path,
    console: Console,
    world_dir: Path | None = None,
    slot_decisions: int = WARMUP,
    ab_users: int = AB_USERS,
) -> None:
    """Start the service on a free loopback port, ask it for recommendations, print them.

    Shows: the most active simulated people's lists with their reasons; the same person's
    list right after they click its first item (no retraining); an anonymous visitor whose
    three views steer their session's list; the items similar to one item; a content slot
    that learns; and an A/B test of the popular against the personalized pipeline with
    `ab_users` simulated people, reported from the log once the service has stopped.
    """
    bundle = ModelRegistry.of(settings).load()
    model = next(iter(bundle.models.values()))
    activity = model.history_.getnnz(axis=1)
    people = [str(model.user_ids_[u]) for u in activity.argsort()[::-1][:PEOPLE]]
    settings = with_arm_surfaces(settings, AB_ARMS)
    port = free_port()
    log = settings.data_dir / "demo-server.log"
    server = start_server(settings.data_dir, port, env=settings_environment(settings), log=log)
    world = World.load(world_dir / "truth") if world_dir is not None else None
    ab: AbSetup | None = None
    try:
        with Client(f"http://127.0.0.1:{port}", key_file.read_text().strip()) as client:
            _show(client, people, console)
            if world is not None and slot_decisions > 0:
                show_slot(client, world, console, decisions=slot_decisions)
            if world is not None and ab_users > 0:
                users = min(ab_users, len(world.arrays.user_ids))
                name = f"demo-ab-{utcnow():%Y%m%d-%H%M%S}"
                ab = AbSetup(arms=AB_ARMS, users=users, seed=world.config.seed, experiment=name)
                console.print(
                    f"\nA/B test through the API: experiment {name}, popular against "
                    f"personalized, {users:,} simulated people, a list a day for two days; they "
                    "click as their hidden tastes say."
                )
                run_ab(client, world, settings, ab, console)
    finally:
        _stop(server)  # its impression log is flushed on the way out
    if ab is not None:
        _print_ab(settings, ab, console)


def _print_ab(settings: Settings, ab: AbSetup, console: Console) -> None:
    store = settings_store(settings)
    try:
        # reactions are timed a few minutes after their list: read the log beyond now
        until = utcnow() + timedelta(days=ab.visits + 1)
        report = report_experiment(store, settings.tenant, ab.experiment, until=until)
    finally:
        store.close()
    result = summary(report, ab.arms)
    print_ab(console, result, ab.arms)
    c = result["comparisons"].get(ab.arms[1])
    if c is not None:
        low, high = c["ci"]
        console.print(
            f"Personalized against popular: CTR lift {100 * c['lift']:+.1f}% (95% interval "
            f"{100 * low:+.1f}% to {100 * high:+.1f}%), p = {c['p_value']:.2g}."
        )
    others = []
    for metric in report["metrics"][1:]:
        found = metric["comparisons"].get(ab.arms[1])
        if found is not None and found["lift"] is not None:
            others.append(f"{metric['metric']} {100 * found['lift']:+.1f}% ({found['verdict']})")
    if others:
        console.print("The other metrics (Holm-corrected): " + "; ".join(others) + ".")
    console.print(
        f"The full report: penchant experiment report {ab.experiment} --data-dir "
        f"{settings.data_dir} --output REPORT_DIR"
    )


def _show(client: Client, people: list[str], console: Console) -> None:
    console.print(f"\nServing through the real HTTP API ({client.base_url}):")
    answers = [client.recommend(person, k=5) for person in people]
    for person, answer in zip(people, answers, strict=True):
        _table(console, f"GET /v1/recommendations?user_id={person}&k=5", answer)
    first, shown = people[0], answers[0]
    clicked = shown.items[0].item_id
    client.send_events(
        [{"event_id": f"demo-click-{first}-{clicked}", "user_id": first, "item_id": clicked,
          "type": "click", "context": {"request_id": shown.request_id, "position": 0}}]
    )  # fmt: skip
    _table(
        console,
        f"{first} clicks {clicked}; the next answer, with no retraining",
        client.recommend(first, k=5),
    )
    viewed = [i.item_id for i in client.similar_items(clicked, k=3).items]
    client.send_events(
        [{"event_id": f"demo-view-{n}", "session_id": "demo-visitor", "item_id": item,
          "type": "view"} for n, item in enumerate(viewed)]
    )  # fmt: skip
    _table(
        console,
        f"an anonymous visitor views {', '.join(viewed)}: GET /v1/sessions/demo-visitor/"
        "recommendations",
        client.session_recommendations("demo-visitor", k=5),
    )
    _table(console, f"GET /v1/items/{clicked}/similar", client.similar_items(clicked, k=5))


def _table(console: Console, title: str, answer: Recommendations) -> None:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    table.add_column("reason")
    for rank, item in enumerate(answer.items, 1):
        table.add_row(str(rank), item.item_id, f"{item.score:.3f}", item.reason or "")
    console.print()
    console.print(table)
    console.print(f"  model {answer.model_version}, pipeline {answer.pipeline}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
