"""A/B tests of pipelines through the real service, with simulated people who react to what
they are shown as their hidden tastes say (`penchant.ingest.world`).

The experiment is defined and started through the API; each simulated person asks for
recommendations (`GET /v1/recommendations`), and their reactions to the list (dismissals,
clicks, views, dwell, purchases...) are drawn from the world's true click model and sent back
with the list's `request_id` (`POST /v1/events`). The service logs each list's impressions
with the person's arm; the report is computed from that log afterwards, by the same code as
`penchant experiment report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from penchant.client import Client
from penchant.ingest.world import World
from penchant.schema import EventContext
from penchant.schema.common import utcnow
from penchant.settings import Settings, SurfaceSettings

#: Pipelines an arm can name without configuring them: a non-personalized baseline (the
#: `trending` source, which serves people the models never saw as well), and the service's
#: default (personalized) pipeline.
POPULAR = SurfaceSettings(
    stages=[{"stage": "trending", "model": "popular", "n": 200, "weight": 1.0}, {"stage": "score"}]
)
PERSONALIZED = "personalized"


@dataclass(frozen=True)
class AbSetup:
    """What a simulated A/B test asks of the service.

    Attributes:
        arms: arm names; each is a configured surface, `popular`, or `personalized` (the
            default pipeline). The first is the control.
        users: simulated people, drawn from the world without repetition.
        visits: lists each person asks for, one a day (the requests carry the day's time,
            so the log spans `visits` days).
        k: items per list.
        seed: the randomness of who is drawn and how they react.
        experiment: the experiment's id in the service (new for every run).
        kind: `ab`, or `interleaving` (two arms, each list a team draft of both).
    """

    arms: tuple[str, ...]
    users: int
    visits: int = 2
    k: int = 10
    seed: int = 0
    experiment: str = "simulated-ab"
    kind: str = "ab"


def with_arm_surfaces(settings: Settings, arms: Sequence[str]) -> Settings:
    """The settings with the built-in arms' surfaces added where an arm needs one."""
    surfaces = dict(settings.surfaces)
    if "popular" in arms and "popular" not in surfaces:
        surfaces["popular"] = POPULAR
    return settings.model_copy(update={"surfaces": surfaces})


def arm_surface(settings: Settings, arm: str) -> str:
    """The surface an arm is served: `personalized` is the default pipeline."""
    if arm == PERSONALIZED and PERSONALIZED not in settings.surfaces:
        return settings.serving.default_surface
    return arm


def run_ab(
    client: Client,
    world: World,
    settings: Settings,
    setup: AbSetup,
    console: Console | None = None,
) -> dict[str, Any]:
    """Define and start the experiment, let the simulated people visit, then stop it.

    Returns:
        `{"experiment": id, "lists": n, "events_sent": n}`; the numbers come from the report
        computed from the log afterwards.
    """
    surface = settings.serving.default_surface
    arms = [{"name": a, "surface": arm_surface(settings, a)} for a in setup.arms]
    body = {"surface": surface, "arms": arms, "unit": "user", "holdout": False, "kind": setup.kind}
    client.put_experiment(setup.experiment, body)
    client.start_experiment(setup.experiment)
    rng = np.random.default_rng(setup.seed)
    people = rng.choice(world.arrays.user_ids, size=setup.users, replace=False)
    lists = sent = 0
    progress = Progress(console=console, transient=True, disable=console is None)
    with progress:
        task = progress.add_task("simulated visits", total=len(people) * setup.visits)
        began = utcnow()
        for visit in range(setup.visits):
            batch: list[dict[str, Any]] = []
            for n, person in enumerate(people):
                # a visit a day: the n-th on day n, the people spread over its first hour
                at = began + timedelta(days=visit, seconds=60 * n / len(people) * 60)
                time = {"time": at.isoformat()}
                answer = client.recommend(str(person), k=setup.k, context=time)
                shown = [i.item_id for i in answer.items]
                lists += 1
                progress.advance(task)
                if not shown:
                    continue
                context = EventContext(request_id=answer.request_id, surface=surface)
                reactions = world.respond(str(person), shown, rng, context, at=at)
                batch += _events(reactions.to_pylist())
                if len(batch) >= 500:
                    sent += _send(client, batch)
                    batch = []
            sent += _send(client, batch)
    client.stop_experiment(setup.experiment)
    return {"experiment": setup.experiment, "lists": lists, "events_sent": sent}


def _events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """World reaction rows (`EVENT_TABLE_SCHEMA`) as the JSON events of `POST /v1/events`."""
    out = []
    for row in rows:
        event: dict[str, Any] = {
            "event_id": row["event_id"],
            "user_id": row["user_id"],
            "session_id": row["session_id"],
            "item_id": row["item_id"],
            "type": row["type"],
            "timestamp": datetime.fromtimestamp(row["ts"] / 1e6, UTC).isoformat(),
        }
        if row["value"] is not None and row["value"] == row["value"]:
            event["value"] = row["value"]
        if row["context"]:
            event["context"] = orjson.loads(row["context"])
        out.append({k: v for k, v in event.items() if v is not None})
    return out


def _send(client: Client, events: list[dict[str, Any]]) -> int:
    if not events:
        return 0
    client.send_events(events)
    return len(events)


def summary(report: dict[str, Any], arms: Sequence[str]) -> dict[str, Any]:
    """What `penchant simulate --json` prints: per arm impressions, clicks and CTR, and for
    each arm against the first its CTR lift, 95% interval and p-value (for an interleaving
    experiment: the lists each arm won, and the preference with its interval and p-value)."""
    if report.get("kind") == "interleaving":
        keys = ("kind", "lists", "units", "wins", "ties", "delta", "delta_ci", "p_value", "verdict")
        return {k: report[k] for k in keys}
    totals, ctr = report["totals"], next(m for m in report["metrics"] if m["metric"] == "ctr")
    out: dict[str, Any] = {"arms": {}, "comparisons": {}}
    for arm in arms:
        t = totals.get(arm, {})
        impressions, clicks = int(t.get("impressions", 0)), int(t.get("clicks", 0))
        out["arms"][arm] = {
            "users": report["units"].get(arm, 0),
            "impressions": impressions,
            "clicks": clicks,
            "ctr": clicks / impressions if impressions else None,
        }
    for arm in arms[1:]:
        c = ctr["comparisons"].get(arm)
        if c is not None:
            out["comparisons"][arm] = {
                "lift": c["lift"],
                "ci": c["lift_ci"],
                "p_value": c["p_value"],
                "always_valid_p": c.get("always_valid_p"),
            }
    out["sample_ratio_p"] = report["sample_ratio"].get("p_value")
    return out


def print_ab(console: Console, result: dict[str, Any], arms: Sequence[str]) -> None:
    """The simulated A/B test as a table: per arm users, impressions, clicks, CTR, and each
    arm's CTR lift over the first with its 95% interval and p-value."""
    if result.get("kind") == "interleaving":
        low, high = result["delta_ci"]
        wins = ", ".join(f"{arm} {n:,}" for arm, n in result["wins"].items())
        console.print(
            f"Interleaving, {result['lists']:,} lists: won by {wins} ({result['ties']:,} ties or "
            f"no clicks); preference for {arms[1]} {result['delta']:+.3f} (95% interval "
            f"{low:+.3f} to {high:+.3f}), p = {result['p_value']:.2g}: {result['verdict']}."
        )
        return
    table = Table(
        title="A/B test: CTR per arm; lift over the first arm", title_justify="left", box=None
    )
    for column in ("arm", "users", "shown", "clicks", "CTR", "lift", "95% interval", "p"):
        table.add_column(column, no_wrap=True, justify="left" if column == "arm" else "right")
    for arm in arms:
        a = result["arms"][arm]
        c = result["comparisons"].get(arm)
        lift = ci = p = ""
        if c is not None:
            lift = f"{100 * c['lift']:+.1f}%"
            ci = f"{100 * c['ci'][0]:+.1f}% to {100 * c['ci'][1]:+.1f}%"
            p = f"{c['p_value']:.2g}"
        ctr = "n/a" if a["ctr"] is None else f"{a['ctr']:.2%}"
        table.add_row(
            arm, f"{a['users']:,}", f"{a['impressions']:,}", f"{a['clicks']:,}", ctr, lift, ci, p
        )
    console.print(table)
