"""Deciding, rewarding, and rebuilding a slot's statistics from the log after a restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from penchant.bandits import make_policy
from penchant.content import features
from penchant.content.decisions import (
    Decider,
    DecisionContext,
    DecisionRequest,
    decision_key,
    stats_key,
)
from penchant.content.features import featurize, signature
from penchant.content.rebuild import rebuild_slot
from penchant.content.slots import Slots
from penchant.errors import InvalidInput, NotFound
from penchant.schema import Event, EventContext
from penchant.schema.content import Eligibility, Slot, Variant
from penchant.store import Store
from penchant.store.state import MemoryState, StateStore, open_state

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # a Monday


class LogSink:
    """Appends the events the decider makes to the store at once (as the writer would)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events: list[Event] = []

    def __call__(self, tenant: str, event: Event) -> None:
        self.events.append(event)
        self.store.events.append(tenant, [event])


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def hero(policy: dict[str, object] | None = None, **fields: object) -> Slot:
    return Slot(
        id="home_hero",
        policy=policy or {"name": "linucb", "alpha": 0.3},
        features=["device", "segment"],
        segments=["sports", "news"],
        reward={"click": 1.0, "conversion": 1.0, "dwell": 0.01},
        **fields,  # type: ignore[arg-type]
    )


def decider_for(
    store: Store, state: StateStore, sink: LogSink | None = None, slots: Slots | None = None
) -> Decider:
    slots = slots or Slots(store.content)
    return Decider(slots, state, sink, rebuild=lambda t, live: _rebuild(store, state, t, live))


def _rebuild(store: Store, state: StateStore, tenant: str, live: object) -> None:
    rebuild_slot(store.events, state, tenant, live)  # type: ignore[arg-type]


def ask(
    segment: str | None = None, device: str | None = "mobile", **ctx: object
) -> DecisionRequest:
    context = DecisionContext(segment=segment, device=device, time=T0, **ctx)  # type: ignore[arg-type]
    return DecisionRequest(slot="home_hero", user_id="u1", context=context)


def click(decision_id: str, kind: str = "click", value: float | None = None) -> Event:
    return Event(
        user_id="u1",
        type=kind,
        value=value,
        timestamp=T0,
        context=EventContext(decision_id=decision_id),
    )


def stats_of(
    state: StateStore, tenant: str, slot: Slot, variant: str, scope: str = ""
) -> np.ndarray:
    raw = state.get(tenant, stats_key(signature(slot, scope), variant))
    width = make_policy(slot.policy).width(features.width(slot))
    return np.zeros(width) if raw is None else np.frombuffer(raw, dtype="<f8")


@pytest.fixture
def setup(store: Store, tenant: str) -> Iterator[tuple[Store, Slots]]:
    slots = Slots(store.content)
    slots.put(tenant, hero())
    for vid in ("a", "b", "c"):
        slots.put_variant(tenant, "home_hero", Variant(id=vid, text=f"Headline {vid}"))
    yield store, slots


def test_only_approved_eligible_variants_are_chosen(
    setup: tuple[Store, Slots], tenant: str
) -> None:
    store, slots = setup
    slots.put_variant(tenant, "home_hero", Variant(id="p", text="pending", status="pending"))
    only_sports = Eligibility(segments=["sports"])
    slots.put_variant(tenant, "home_hero", Variant(id="s", text="sports", eligibility=only_sports))
    decider = decider_for(store, MemoryState(), slots=slots)
    chosen = {decider.decide(tenant, ask("news")).variant_id for _ in range(200)}
    assert chosen == {"a", "b", "c"}
    chosen = {decider.decide(tenant, ask("sports")).variant_id for _ in range(200)}
    assert chosen == {"a", "b", "c", "s"}
    slots.set_status(tenant, "home_hero", "p", "approved")
    assert "p" in {decider.decide(tenant, ask("news")).variant_id for _ in range(200)}


def test_no_eligible_variant_and_unknown_slot_are_not_found(
    setup: tuple[Store, Slots], tenant: str
) -> None:
    store, slots = setup
    for vid in ("a", "b", "c"):
        slots.set_status(tenant, "home_hero", vid, "retired")
    decider = decider_for(store, MemoryState(), slots=slots)
    with pytest.raises(NotFound, match="no approved variant"):
        decider.decide(tenant, ask())
    with pytest.raises(NotFound, match="no slot"):
        decider.decide(tenant, DecisionRequest(slot="nope", session_id="s"))


def test_a_decision_counts_its_pull_and_its_propensity_is_the_policys(
    setup: tuple[Store, Slots], tenant: str
) -> None:
    store, _ = setup
    state = MemoryState()
    decision = decider_for(store, state).decide(tenant, ask("sports"), np.random.default_rng(3))
    slot = hero()
    x = featurize(slot, at=T0, device="mobile", segment="sports")
    policy = make_policy(slot.policy)
    assert np.array_equal(stats_of(state, tenant, slot, decision.variant_id), policy.pull_delta(x))
    # from zero statistics LinUCB ties every arm: each had a third of the chance
    assert decision.propensity == pytest.approx(1 / 3)
    assert decision.variant == {
        "id": decision.variant_id,
        "text": f"Headline {decision.variant_id}",
        "template": None,
        "image": None,
        "layout": None,
        "metadata": {},
    }


def test_rewards_are_weighted_capped_and_counted_once(
    setup: tuple[Store, Slots], tenant: str
) -> None:
    store, _ = setup
    state = MemoryState()
    decider = decider_for(store, state)
    decision = decider.decide(tenant, ask("news"))
    slot = hero()
    policy = make_policy(slot.policy)
    x = featurize(slot, at=T0, device="mobile", segment="news")
    before = stats_of(state, tenant, slot, decision.variant_id).copy()
    assert decider.reward(tenant, [click(decision.decision_id, "dwell", 30.0)]) == 1
    after = stats_of(state, tenant, slot, decision.variant_id)
    np.testing.assert_allclose(after - before, policy.reward_delta(x, 0.3))
    # a click and a conversion would make 2.3; the cap holds the decision at 1
    assert (
        decider.reward(
            tenant, [click(decision.decision_id), click(decision.decision_id, "conversion")]
        )
        == 1
    )
    capped = stats_of(state, tenant, slot, decision.variant_id)
    np.testing.assert_allclose(capped - before, policy.reward_delta(x, 1.0))
    record = orjson.loads(state.get(tenant, decision_key(decision.decision_id)) or b"{}")
    assert record["r"] == 1.0
    # outcome types without a weight, unknown decisions and plain events earn nothing
    assert decider.reward(tenant, [click(decision.decision_id, "view")]) == 0
    assert decider.reward(tenant, [click("unknown")]) == 0
    assert decider.reward(tenant, [Event(user_id="u1", type="click", timestamp=T0)]) == 0


def test_an_expired_decision_earns_nothing(setup: tuple[Store, Slots], tenant: str) -> None:
    store, _ = setup
    state = MemoryState()
    decider = decider_for(store, state)
    decision = decider.decide(tenant, ask())
    state.delete(tenant, decision_key(decision.decision_id))  # as the window's expiry does
    assert decider.reward(tenant, [click(decision.decision_id)]) == 0


def test_a_restart_loses_nothing_the_log_holds(setup: tuple[Store, Slots], tenant: str) -> None:
    """Statistics rebuilt from the logged decisions and rewards equal the live ones."""
    store, _ = setup
    live_state = MemoryState()
    sink = LogSink(store)
    decider = decider_for(store, live_state, sink)
    rng = np.random.default_rng(5)
    open_ids = []
    for n in range(60):
        segment = ("sports", "news", None)[n % 3]
        decision = decider.decide(tenant, ask(segment, device=("mobile", "desktop")[n % 2]))
        if rng.random() < 0.4:
            decider.reward(tenant, [click(decision.decision_id)])
        else:
            open_ids.append(decision.decision_id)
    assert {e.type for e in sink.events} == {"decision", "reward"}
    fresh = MemoryState()  # the embedded default after a restart
    restarted = decider_for(store, fresh)
    slot = hero()
    restarted.decide(tenant, ask("news"))  # the first decision rebuilds from the log
    for variant in ("a", "b", "c"):
        live = stats_of(live_state, tenant, slot, variant)
        rebuilt = stats_of(fresh, tenant, slot, variant)
        if variant == restarted_choice(fresh, live_state, tenant, slot):
            rebuilt = rebuilt - make_policy(slot.policy).pull_delta(
                featurize(slot, at=T0, device="mobile", segment="news")
            )
        np.testing.assert_allclose(rebuilt, live, rtol=1e-12, atol=1e-9)
    # decisions still in their window can earn their reward after the restart
    assert restarted.reward(tenant, [click(open_ids[0])]) == 1


def restarted_choice(fresh: StateStore, live: StateStore, tenant: str, slot: Slot) -> str:
    """The variant the first decision after the restart chose: the one whose pull count
    is one more than before."""
    counts = {}
    for variant in ("a", "b", "c"):
        f, v = stats_of(fresh, tenant, slot, variant), stats_of(live, tenant, slot, variant)
        counts[variant] = f[0] - v[0]  # LinUCB's first cell counts x[0]^2 = 1 per pull
    return max(counts, key=lambda k: counts[k])


def test_a_new_policy_learns_from_decisions_logged_under_the_old_one(
    setup: tuple[Store, Slots], tenant: str
) -> None:
    store, slots = setup
    decider = decider_for(store, MemoryState(), LogSink(store), slots=slots)
    for _ in range(30):
        decider.decide(tenant, ask("sports"))
    slots.put(tenant, hero({"name": "linear-thompson", "v": 0.5}))
    state = decider.state
    new = hero({"name": "linear-thompson", "v": 0.5})
    decider.decide(tenant, ask("sports"))
    pulls = sum(stats_of(state, tenant, new, v)[0] for v in ("a", "b", "c"))
    assert pulls == 31  # 30 rebuilt from the log, plus this decision


def test_workers_sharing_redis_learn_as_one(
    setup: tuple[Store, Slots], tenant: str, redis_url: str
) -> None:
    store, _ = setup
    state = open_state(redis_url)
    try:
        one, two = decider_for(store, state), decider_for(store, open_state(redis_url))
        for n in range(40):
            worker = (one, two)[n % 2]
            decision = worker.decide(tenant, ask("sports"))
            (two, one)[n % 2].reward(tenant, [click(decision.decision_id)])
        slot = hero()
        cells = [stats_of(state, tenant, slot, v) for v in ("a", "b", "c")]
        assert sum(c[0] for c in cells) == 40  # every pull counted once
        x = featurize(slot, at=T0, device="mobile", segment="sports")
        b_sum = sum(c[-len(x) :] for c in cells)
        np.testing.assert_allclose(b_sum, 40 * x)  # every reward r*x counted once
    finally:
        state.delete_prefix(tenant, "")


def test_thompson_slots_refuse_a_reward_cap_above_one(store: Store, tenant: str) -> None:
    slots = Slots(store.content)
    with pytest.raises(InvalidInput, match="reward_cap"):
        slots.put(tenant, hero({"name": "thompson"}, reward_cap=5.0))
    with pytest.raises(InvalidInput) as error:
        slots.put(tenant, hero({"name": "linucb", "alpha": -1}))
    assert error.value.field is not None and error.value.field.startswith("policy")


def test_decisions_follow_the_schedule(setup: tuple[Store, Slots], tenant: str) -> None:
    store, slots = setup
    later = Eligibility(start=T0 + timedelta(days=1))
    slots.put_variant(tenant, "home_hero", Variant(id="later", text="soon", eligibility=later))
    decider = decider_for(store, MemoryState(), slots=slots)
    assert "later" not in {decider.decide(tenant, ask()).variant_id for _ in range(100)}
    tomorrow = DecisionRequest(
        slot="home_hero", session_id="s", context=DecisionContext(time=T0 + timedelta(days=2))
    )
    assert "later" in {decider.decide(tenant, tomorrow).variant_id for _ in range(100)}


def test_an_experiment_arm_learns_apart_even_with_the_slots_own_policy(
    setup: tuple[Store, Slots], tenant: str
) -> None:
    """An arm's decisions read and feed statistics of their own, scoped by experiment and
    arm, even when its policy is the slot's: the control of an experiment must not learn
    from the traffic outside it (nor that traffic from the arm). A restart rebuilds each
    scope from its own logged decisions only."""
    store, slots = setup
    state, sink = MemoryState(), LogSink(store)
    decider = decider_for(store, state, sink, slots)
    slot = hero()
    own = dict(slot.policy)
    tag = {"experiment": "e1", "arm": "control"}
    made = [
        decider.decide(tenant, ask("sports"), policy=own, arm="e1/control", attributes=tag)
        for _ in range(5)
    ]
    outside = decider.decide(tenant, ask("sports"))
    assert decider.reward(tenant, [click(made[0].decision_id)]) == 1
    scoped = [stats_of(state, tenant, slot, v, "e1/control") for v in ("a", "b", "c")]
    base = [stats_of(state, tenant, slot, v) for v in ("a", "b", "c")]
    d = features.width(slot)
    assert sum(s[0] for s in scoped) == 5  # x[0] = 1 per pull: five pulls in the arm
    assert sum(s[d * d] for s in scoped) == 1  # and the one reward
    assert sum(s[0] for s in base) == 1  # the slot's own decision alone
    assert all(e.context.attributes.get("arm") == "control" for e in sink.events[:5])
    # a restart (the online state lost) rebuilds each scope from its own decisions
    fresh = MemoryState()
    rebuilder = decider_for(store, fresh, None, slots)
    rebuilder.decide(tenant, ask("sports"), policy=own, arm="e1/control", dry_run=True)
    rebuilder.decide(tenant, ask("sports"), dry_run=True)
    rebuilt = [stats_of(fresh, tenant, slot, v, "e1/control") for v in ("a", "b", "c")]
    for before, after in zip(scoped, rebuilt, strict=True):
        assert np.allclose(before, after, rtol=0, atol=1e-12)
    assert sum(stats_of(fresh, tenant, slot, v)[0] for v in ("a", "b", "c")) == 1
    assert outside.decision_id not in {m.decision_id for m in made}
    logged_outside = next(e for e in sink.events if e.context.decision_id == outside.decision_id)
    assert "arm" not in logged_outside.context.attributes
