"""What the CLI and the service share about dynamic content: the generation server's config,
and a slot's logged decisions exported for off-policy evaluation."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from penchant.content.decisions import DECISION_TYPE, REWARD_TYPE
from penchant.content.features import layout_signature
from penchant.content.generate import GenerationConfig
from penchant.errors import Conflict, NotFound
from penchant.settings import Settings
from penchant.store import EventFilter, Store


def generation_config(settings: Settings) -> GenerationConfig:
    """The generation server configured in `content`.

    Raises:
        Conflict: no server is configured (`content.generation_url`).
    """
    content = settings.content
    if content.generation_url is None:
        raise Conflict(
            "no generation server is configured: set content.generation_url in penchant.toml "
            "or PENCHANT_CONTENT__GENERATION_URL",
            field="content.generation_url",
        )
    return GenerationConfig(
        url=content.generation_url,
        model=content.generation_model,
        api_key=content.generation_api_key,
        timeout_s=content.generation_timeout_s,
    )


@dataclass(frozen=True)
class DecisionExport:
    """What `export_decisions` wrote."""

    path: Path
    rows: int
    actions: list[str]
    skipped: int  # decisions logged under another context layout


def export_decisions(store: Store, tenant: str, slot_id: str, path: Path) -> DecisionExport:
    """Write a slot's logged decisions as the CSV `penchant ope` reads.

    One row per decision: `action` (the index of its variant in `actions`, the slot's
    variant ids sorted), `variant_id`, `position` (0), `reward` (what its outcomes earned,
    capped), `propensity`, the context features `x1`... (the slot's vector without its
    constant), `decision_id` and `timestamp`. Only decisions under the slot's current
    context layout are written; the others are counted in `skipped`.

    Raises:
        NotFound: no such slot.
    """
    slot = store.content.get_slot(tenant, slot_id)
    if slot is None:
        raise NotFound(f"no slot {slot_id!r}", field="slot")
    layout = layout_signature(slot)
    decisions: list[tuple[str, str, float, list[float], str]] = []
    rewards: dict[str, float] = defaultdict(float)
    skipped = 0
    for batch in store.events.scan(tenant, EventFilter(types=(DECISION_TYPE, REWARD_TYPE))):
        for event in batch:
            ctx = event.context
            if ctx is None or ctx.surface != slot_id or ctx.decision_id is None:
                continue
            if event.type == REWARD_TYPE:
                rewards[ctx.decision_id] += float(event.value or 0.0)
                continue
            x, variant = ctx.attributes.get("x"), ctx.attributes.get("variant")
            if ctx.attributes.get("layout") != layout or not isinstance(x, list):
                skipped += 1
                continue
            when = event.timestamp.isoformat()
            vector = [float(v) for v in x]
            decisions.append((ctx.decision_id, str(variant), ctx.propensity or 1.0, vector, when))
    known = {v.id for v in store.content.list_variants(tenant, slot_id)}
    actions = sorted(known | {d[1] for d in decisions})
    index = {a: n for n, a in enumerate(actions)}
    width = len(decisions[0][3]) if decisions else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["decision_id", "timestamp", "action", "variant_id", "position", "reward", "propensity"]
            + [f"x{k}" for k in range(1, width)]
        )
        for decision_id, variant, propensity, vector, when in decisions:
            earned = min(slot.reward_cap, rewards.get(decision_id, 0.0))
            row = [decision_id, when, index[variant], variant, 0, earned, propensity]
            out.writerow(row + [repr(v) for v in vector[1:]])
    return DecisionExport(path, len(decisions), actions, skipped)
