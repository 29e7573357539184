"""Rebuilding a slot's learned statistics from the event log.

The online state is fast but may forget (memory:// restarts empty; a Redis without
persistence too). The log keeps every decision (variant, propensity, context vector) and
every reward, so the statistics are their sum, recomputed here with the slot's current
policy. Decisions made under another context layout are skipped: their vectors mean
something else. Decisions still inside their attribution window wait for outcomes again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import numpy as np
import orjson

from penchant.bandits import make_policy
from penchant.content.decisions import (
    DECISION_TYPE,
    REWARD_TYPE,
    decision_key,
    stats_key,
)
from penchant.content.features import layout_signature, signature
from penchant.content.slots import LiveSlot
from penchant.schema.common import utcnow
from penchant.store.base import EventFilter, EventStore
from penchant.store.state import StateStore


def _scope(attributes: Mapping[str, Any]) -> str:
    """The statistics scope a logged decision was made in: its experiment arm, if any."""
    arm = attributes.get("arm")
    return f"{attributes.get('experiment')}/{arm}" if arm is not None else ""


def rebuild_slot(events: EventStore, state: StateStore, tenant: str, live: LiveSlot) -> int:
    """Add the statistics the log holds for a slot's layout to the online state.

    Returns:
        How many logged decisions were counted.
    """
    slot = live.slot
    layout, sig = layout_signature(slot), signature(slot, live.scope)
    contexts: list[list[float]] = []
    arms: list[str] = []
    ids: list[str] = []
    times = []
    rewards: dict[str, float] = defaultdict(float)
    wanted = EventFilter(types=(DECISION_TYPE, REWARD_TYPE))
    for batch in events.scan(tenant, wanted):
        for event in batch:
            ctx = event.context
            if ctx is None or ctx.surface != slot.id or ctx.decision_id is None:
                continue
            if event.type == REWARD_TYPE:
                rewards[ctx.decision_id] += float(event.value or 0.0)
            elif ctx.attributes.get("layout") == layout and _scope(ctx.attributes) == live.scope:
                x = ctx.attributes.get("x")
                variant = ctx.attributes.get("variant")
                if isinstance(x, list) and isinstance(variant, str):
                    contexts.append([float(v) for v in x])
                    arms.append(variant)
                    ids.append(ctx.decision_id)
                    times.append(event.timestamp)
    if not ids:
        return 0
    earned = np.array([min(slot.reward_cap, rewards.get(i, 0.0)) for i in ids])
    policy = make_policy(slot.policy)  # a fresh one: the cached slot's only decides
    policy.fit(np.asarray(contexts, dtype=np.float64), np.asarray(arms), earned)
    for arm, vector in policy.stats_.items():
        state.add_floats(tenant, stats_key(sig, arm), vector)
    window = timedelta(seconds=slot.attribution_window_s)
    now = utcnow()
    for i, (decision_id, at) in enumerate(zip(ids, times, strict=True)):
        left = (at + window - now).total_seconds()
        if left > 0:
            record = {
                "slot": slot.id,
                "sig": sig,
                "variant": arms[i],
                "x": contexts[i],
                "t": at.timestamp(),
            }
            if live.scope:  # an experiment arm's decision: its outcomes feed that arm
                record["policy"], record["arm"] = dict(slot.policy), live.scope
            state.set(
                tenant,
                decision_key(decision_id),
                orjson.dumps({**record, "r": float(earned[i])}),
                ttl_s=left,
            )
    return len(ids)
