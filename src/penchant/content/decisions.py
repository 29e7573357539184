"""Deciding which variant fills a slot for one request, and learning from what followed.

Each variant's statistics are an additive vector in the online state (`bandit:{sig}:{id}`,
where `sig` names the slot and its policy and feature layout). A decision reads the
eligible variants' vectors in one round trip (with the person's mirrored consent, when asked
to check it), lets the policy choose, and in a second round trip adds the policy's pull to
the chosen vector and stores the decision's record; an outcome that carries the decision's
id back adds the policy's reward. Additions are atomic
in the state store, so several workers sharing Redis learn as one.

The event log is the durable record: every decision is logged as a `decision` event (the
variant, its propensity and the context vector) and every reward as a `reward` event, so
the statistics can be rebuilt from the log when the online state lost them (a restart of
the embedded default, a flushed Redis): see `penchant.content.rebuild`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

from penchant.content.features import featurize, layout_signature, signature
from penchant.content.slots import LiveSlot, Slots, check_slot
from penchant.errors import NotFound
from penchant.privacy.consent import PREFIX as PREFERENCES_PREFIX
from penchant.privacy.consent import Preferences
from penchant.schema import Event, EventContext
from penchant.schema.common import Id, UtcDatetime, utcnow
from penchant.store.state import AddFloats, SetValue, StateStore, Write
from penchant.types import Purpose

#: Receives the events the service makes (decisions, rewards) to append to the log.
EventSink = Callable[[str, Event], None]

DECISION_TYPE = "decision"
REWARD_TYPE = "reward"


def stats_key(sig: str, variant_id: str) -> str:
    """The online-state key of a variant's statistics under one slot layout."""
    return f"bandit:{sig}:{variant_id}"


def built_key(sig: str) -> str:
    """The marker that a slot layout's statistics are in the online state."""
    return f"bandit:{sig}:built"


def decision_key(decision_id: str) -> str:
    """Where a decision waits for its outcomes, until its attribution window closes."""
    return f"decision:{decision_id}"


class DecisionContext(BaseModel):
    """What is known about the request: each field feeds the policy's context features
    (when the slot lists its group) and the variants' eligibility rules."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=35)
    surface: Id | None = None
    segment: Id | None = None
    time: UtcDatetime | None = None


class DecisionRequest(BaseModel):
    """POST /v1/decisions: which variant of `slot` this person or session should see."""

    model_config = ConfigDict(extra="forbid")

    slot: Id
    user_id: Id | None = None
    session_id: Id | None = None
    context: DecisionContext = Field(default_factory=DecisionContext)


@dataclass(frozen=True)
class _Plan:
    """What deciding needs of a live slot that changes only when the slot is reloaded."""

    live: LiveSlot
    sig: str
    layout: str
    keys: tuple[str, ...]  # each approved variant's statistics key, in `live.variants` order
    policy: str


@dataclass(frozen=True)
class Decision:
    """A chosen variant and the probability the policy had of choosing it."""

    decision_id: str
    slot: str
    variant: dict[str, Any]
    variant_id: str
    propensity: float
    policy: str
    eligible: int


class Decider:
    """Decisions and their rewards for every tenant, over shared online state."""

    def __init__(
        self,
        slots: Slots,
        state: StateStore,
        sink: EventSink | None = None,
        *,
        rebuild: Callable[[str, LiveSlot], object] | None = None,
    ) -> None:
        self.slots, self.state, self.sink = slots, state, sink
        self._rebuild = rebuild
        self._built: set[tuple[str, str]] = set()
        self._plans: dict[tuple[str, str, str], _Plan] = {}
        self._arms: dict[tuple[str, str, str], tuple[LiveSlot, LiveSlot]] = {}

    def decide(
        self,
        tenant: str,
        request: DecisionRequest,
        rng: np.random.Generator | None = None,
        *,
        consent_default: bool | None = None,
        dry_run: bool = False,
        policy: Mapping[str, Any] | None = None,
        arm: str = "",
        attributes: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Choose a variant of the request's slot, count the choice, log it.

        Args:
            tenant: the tenant whose slot it is.
            request: the slot, the person or session, and the context.
            rng: the randomness of the choice; by default a generator seeded from the new
                decision's id.
            consent_default: None to use the request's segment as given (the caller has
                checked consent). Otherwise, when the request names a user and a segment,
                the person's mirrored preferences are read with the statistics (one round
                trip) and the segment steers the choice only if they allow
                personalization; `consent_default` is the answer assumed for a person who
                never gave one.
            dry_run: choose as for real, but neither count nor log the choice (a
                preview): nothing learns from it and no outcome can be credited to it.
            policy: another policy config for this decision (an experiment's arm on the
                slot): it chooses, and learns from its own decisions' outcomes only.
            arm: with `policy`, the arm (`experiment/arm`) whose statistics of their own
                the decision reads and feeds, even where its policy is the slot's own.
            attributes: what the logged decision event carries besides (the experiment
                and arm it was made under).

        Raises:
            NotFound: no such slot, or none of its approved variants may be shown to this
                request.
        """
        live = self.slots.live(tenant, request.slot)
        if policy is not None:
            live = self._arm(tenant, live, policy, arm)
        plan = self._plan(tenant, live)
        ctx = request.context
        at = ctx.time or utcnow()
        rows, values, segment = self._read(tenant, plan, request, at, consent_default)
        x = featurize(
            live.slot,
            at=at,
            device=ctx.device,
            segment=segment,
            locale=ctx.locale,
            surface=ctx.surface,
        )
        stats = _stats(values, live.policy.width(len(x)))
        made = uuid.uuid4()
        decision_id = made.hex
        rng = rng if rng is not None else np.random.default_rng(made.int)
        index, propensity = live.policy.choose(stats, x, rng)
        chosen = live.variants[rows[index]]
        decision = Decision(
            decision_id=decision_id,
            slot=live.slot.id,
            variant=chosen.public(),
            variant_id=chosen.id,
            propensity=float(propensity),
            policy=plan.policy,
            eligible=len(rows),
        )
        if dry_run:
            return decision
        context = x.tolist()
        record = {
            "slot": live.slot.id,
            "sig": plan.sig,
            "variant": chosen.id,
            "x": context,
            "t": time.time(),  # the window runs from now, whatever the context's time
            "r": 0.0,
        }
        if policy is not None:  # an outcome is credited to this arm's statistics
            record["policy"], record["arm"] = dict(policy), arm
        # the pull and the record in one round trip
        self.state.write_many(
            tenant,
            [
                AddFloats(plan.keys[rows[index]], live.policy.pull_delta(x)),
                SetValue(
                    decision_key(decision_id),
                    orjson.dumps(record),
                    ttl_s=live.slot.attribution_window_s,
                ),
            ],
        )
        if self.sink is not None:
            self.sink(
                tenant,
                _decision_event(
                    request,
                    decision_id,
                    chosen.id,
                    propensity,
                    context,
                    plan.sig,
                    plan.layout,
                    attributes,
                ),
            )
        return decision

    def _read(
        self,
        tenant: str,
        plan: _Plan,
        request: DecisionRequest,
        at: datetime,
        consent_default: bool | None,
    ) -> tuple[list[int], list[bytes | None], str | None]:
        """The rows of the variants eligible for the request, their statistics, and the
        segment that may steer the choice, in one round trip to the state store.

        Raises:
            NotFound: no approved variant may be shown to this request.
        """
        live, ctx = plan.live, request.context
        segment = ctx.segment
        rows = _eligible(live, ctx, segment, at)
        values: list[bytes | None] = []
        if rows:
            self._ensure_built(tenant, live, plan.sig)
            keys = [plan.keys[i] for i in rows]
            if consent_default is None or request.user_id is None or segment is None:
                values = self.state.get_many(tenant, keys)
            else:
                values = self.state.get_many(tenant, [*keys, PREFERENCES_PREFIX + request.user_id])
                if not _personal(values.pop(), consent_default):
                    # without consent, nothing about the person steers the choice; the
                    # variants eligible without a segment are among those read
                    segment = None
                    kept = set(_eligible(live, ctx, None, at))
                    values = [v for i, v in zip(rows, values, strict=True) if i in kept]
                    rows = [i for i in rows if i in kept]
        if not rows:
            raise NotFound(
                f"slot {request.slot!r} has no approved variant for this request", field="slot"
            )
        return rows, values, segment

    def _arm(self, tenant: str, live: LiveSlot, policy: Mapping[str, Any], arm: str) -> LiveSlot:
        """The slot as an experiment's arm serves it: its own policy, the same variants, and
        statistics of its own (scoped by `arm`).

        Built once per load of the slot, arm and policy config (checked when the
        experiment started).
        """
        key = (tenant, live.slot.id, arm)
        cached = self._arms.get(key)
        if cached is None or cached[0] is not live or cached[1].slot.policy != policy:
            slot = live.slot.model_copy(update={"policy": dict(policy)})
            scoped = LiveSlot(slot, live.variants, check_slot(slot), live.loaded_at, arm)
            cached = self._arms[key] = (live, scoped)
        return cached[1]

    def _plan(self, tenant: str, live: LiveSlot) -> _Plan:
        """The slot's signatures and keys, computed once per load of the slot rather than
        per decision (three blake2b hashes of its definition, about 30 us)."""
        # one plan per slot and statistics scope (an experiment's arms share the slot),
        # replaced when the slot is reloaded
        key = (tenant, live.slot.id, live.scope)
        plan = self._plans.get(key)
        if plan is None or plan.live is not live:
            sig = signature(live.slot, live.scope)
            plan = _Plan(
                live=live,
                sig=sig,
                layout=layout_signature(live.slot),
                keys=tuple(stats_key(sig, v.id) for v in live.variants),
                policy=str(live.slot.policy.get("name")),
            )
            self._plans[key] = plan
        return plan

    def _ensure_built(self, tenant: str, live: LiveSlot, sig: str) -> None:
        """Rebuild the layout's statistics from the log once, if the online state lost them.

        The first worker to find the marker missing rebuilds (`incr` returns 1 to one caller
        only); the others decide with what is there meanwhile.
        """
        if (tenant, sig) in self._built:
            return
        missing = self.state.get(tenant, built_key(sig)) is None
        if missing and self.state.incr(tenant, built_key(sig)) == 1 and self._rebuild:
            self._rebuild(tenant, live)
        self._built.add((tenant, sig))

    def reward(self, tenant: str, events: Sequence[Event]) -> int:
        """Credit the decisions that accepted outcome events carry back; return how many.

        An outcome counts when its type has a weight in the slot's `reward` and it arrives
        within the attribution window. One decision earns at most the slot's `reward_cap`.
        """
        credited = 0
        for event in events:
            decision_id = event.context.decision_id if event.context is not None else None
            if decision_id is None:
                continue
            raw = self.state.get(tenant, decision_key(decision_id))
            if raw is None:
                continue  # unknown, or its window closed
            record = orjson.loads(raw)
            try:
                live = self.slots.live(tenant, record["slot"])
            except NotFound:
                continue
            if "policy" in record:  # made by an experiment's arm: its statistics learn
                live = self._arm(tenant, live, record["policy"], record.get("arm", ""))
            weight = live.slot.reward.get(event.type)
            if weight is None or signature(live.slot, live.scope) != record["sig"]:
                continue
            amount = weight * ((event.value or 0.0) if event.type == "dwell" else 1.0)
            total = min(live.slot.reward_cap, record["r"] + amount)
            delta = total - record["r"]
            if delta <= 0:
                continue
            x = np.asarray(record["x"], dtype=np.float64)
            record["r"] = total
            writes: list[Write] = [
                AddFloats(
                    stats_key(record["sig"], record["variant"]),
                    live.policy.reward_delta(x, delta),
                )
            ]
            # the record keeps what is left of its window, not a new one
            left = live.slot.attribution_window_s - (time.time() - record.get("t", time.time()))
            if left > 0:
                writes.append(SetValue(decision_key(decision_id), orjson.dumps(record), left))
            self.state.write_many(tenant, writes)
            if self.sink is not None:
                self.sink(tenant, _reward_event(event, decision_id, record, delta))
            credited += 1
        return credited


def _eligible(live: LiveSlot, ctx: DecisionContext, segment: str | None, at: datetime) -> list[int]:
    """The rows of the slot's approved variants that may be shown in this context."""
    return [
        i
        for i, v in enumerate(live.variants)
        if v.eligibility.admits(locale=ctx.locale, device=ctx.device, segment=segment, at=at)
    ]


def _stats(values: Sequence[bytes | None], width: int) -> np.ndarray[Any, Any]:
    """Stored statistics vectors as rows; zeros for none (or one of another layout)."""
    stats = np.zeros((len(values), width))
    for row, value in enumerate(values):
        if value is not None and len(value) == 8 * width:
            stats[row] = np.frombuffer(value, dtype="<f8")
    return stats


def _personal(preferences: bytes | None, default: bool) -> bool:
    """Whether mirrored preferences (None: none recorded) allow personalization."""
    if preferences is None:
        return default
    return Preferences.decode(preferences).allows(Purpose.PERSONALIZATION, default)


def _decision_event(
    request: DecisionRequest,
    decision_id: str,
    variant_id: str,
    propensity: float,
    x: list[Any],  # the context vector, as the log stores it
    sig: str,
    layout: str,
    attributes: Mapping[str, Any] | None = None,
) -> Event:
    context = EventContext.model_construct(
        decision_id=decision_id,
        surface=request.slot,
        device=request.context.device,
        locale=request.context.locale,
        propensity=propensity,
        attributes={
            **(attributes or {}),
            "variant": variant_id,
            "sig": sig,
            "layout": layout,
            "x": x,
        },
    )
    return Event.model_construct(
        event_id=f"decision-{decision_id}",
        user_id=request.user_id,
        session_id=request.session_id,
        item_id=None,
        type=DECISION_TYPE,
        value=None,
        timestamp=utcnow(),  # the attribution window runs from now, whatever the context's time
        context=context,
    )


def _reward_event(outcome: Event, decision_id: str, record: dict[str, Any], delta: float) -> Event:
    context = EventContext.model_construct(
        decision_id=decision_id,
        surface=record["slot"],
        attributes={"variant": record["variant"], "sig": record["sig"], "outcome": outcome.type},
    )
    return Event.model_construct(
        event_id=None,
        user_id=outcome.user_id,
        session_id=outcome.session_id,
        item_id=None,
        type=REWARD_TYPE,
        value=delta,
        timestamp=outcome.timestamp,
        context=context,
    )
