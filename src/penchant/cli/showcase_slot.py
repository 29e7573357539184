"""The demo's content slot: a headline policy learns from simulated clicks through the API,
then picks different variants for different people and devices."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from penchant.client import Client
from penchant.ingest.world import World
from penchant.ingest.world_draw import DEVICES
from penchant.ingest.world_variants import STYLES, Requests, SlotWorld

SLOT = "home_hero"
#: Decisions the policy learns from before the table is shown, by default.
WARMUP = 3_000
BATCH = 250


def show_slot(
    client: Client, world: World, console: Console, *, decisions: int = WARMUP, seed: int = 0
) -> None:
    """Define the slot, let simulated people react to `decisions` of its decisions, show
    what it learned."""
    sim = SlotWorld(world)
    client.put_slot(
        SLOT,
        {
            "description": "the headline of the home page",
            "policy": {"name": "linucb", "alpha": 1.0},
            "features": ["device", "segment"],
            "segments": sim.segment_names,
            "reward": {"click": 1.0},
        },
    )
    for vid, topic, style in zip(
        sim.variant_ids, sim.variant_topic, sim.variant_style, strict=True
    ):
        name = str(world.arrays.categories[topic])
        text = (
            f"{name.title()}: today's picks"
            if STYLES[style] == "short"
            else (f"The long read: everything new in {name}, hand-picked for you this week")
        )
        client.put_variant(
            SLOT, vid, {"text": text, "metadata": {"topic": name, "style": STYLES[style]}}
        )
    rng = np.random.default_rng(seed)
    requests = sim.requests(decisions, rng)
    truth = sim.click_probability(requests.users, requests.devices)
    index = {vid: n for n, vid in enumerate(sim.variant_ids)}
    earned = np.empty(decisions)
    clicks: list[dict[str, object]] = []
    user_ids = world.arrays.user_ids
    console.print(
        f"\nA content slot, {SLOT}: {len(sim.variant_ids)} headline variants (a topic in a short "
        "or a long style), chosen per request by LinUCB over the device and the person's segment."
    )
    for t in range(decisions):
        user, device = int(requests.users[t]), int(requests.devices[t])
        decision = client.decide(SLOT, str(user_ids[user]), context=_context(sim, requests, t))
        chance = truth[t, index[decision.variant_id]]
        earned[t] = chance
        if rng.random() < chance:
            clicks.append(
                {
                    "event_id": f"demo-slot-click-{decision.decision_id}",
                    "user_id": str(user_ids[user]),
                    "type": "click",
                    "context": {"decision_id": decision.decision_id, "device": DEVICES[device]},
                }
            )
        if len(clicks) >= BATCH or t == decisions - 1:
            if clicks:
                client.send_events(clicks)
            clicks = []
    window = min(500, decisions // 2)
    first, last = earned[:window].mean(), earned[-window:].mean()
    best, uniform = truth.max(axis=1).mean(), truth.mean()
    console.print(
        f"{decisions:,} simulated people asked for it through POST /v1/decisions and clicked as "
        f"their hidden tastes say; clicks came back with the decision_id. Expected click rate "
        f"of the chosen headline: {first:.1%} in the first {window} decisions, {last:.1%} in "
        f"the last {window} (a uniform choice: {uniform:.1%}; the best for each person: "
        f"{best:.1%})."
    )
    _table(client, sim, world, console)


def _context(sim: SlotWorld, requests: Requests, t: int) -> dict[str, object]:
    device, segment = int(requests.devices[t]), int(requests.segments[t])
    return {"device": DEVICES[device], "segment": sim.segment_names[segment]}


def _table(client: Client, sim: SlotWorld, world: World, console: Console) -> None:
    """The variant chosen for people of different segments, on a phone and on a desktop."""
    table = Table(
        title=f"POST /v1/decisions for slot {SLOT}", title_justify="left", show_edge=False
    )
    for column in ("person", "segment", "device", "chosen variant", "its CTR", "best variant"):
        table.add_column(column)
    seen: set[int] = set()
    segments = np.argmax(world.arrays.user_taste, axis=1)
    for user in np.argsort(-world.arrays.activity):
        topic = int(segments[user])
        if topic in seen or topic not in sim.topics:
            continue
        seen.add(topic)
        for device in (0, 1):  # mobile, desktop
            truth = sim.click_probability(np.array([user]), np.array([device]))[0]
            context = {"device": DEVICES[device], "segment": sim.segment_names[topic]}
            decision = client.decide(SLOT, str(world.arrays.user_ids[user]), context=context)
            chosen = sim.variant_ids.index(decision.variant_id)
            table.add_row(
                str(world.arrays.user_ids[user]),
                sim.segment_names[topic],
                DEVICES[device],
                decision.variant_id,
                f"{truth[chosen]:.1%}",
                f"{sim.variant_ids[int(truth.argmax())]} ({truth.max():.1%})",
            )
        if len(seen) == 3:
            break
    console.print()
    console.print(table)
