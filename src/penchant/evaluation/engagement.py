"""Engagement of an experiment's units, from the event log: one row per user (or session).

The unit of analysis is the unit of randomization. A unit enters the analysis at its first
exposure: the first impression logged under the experiment with its arm (the service logs
it when the arm is actually served). What it does from then on counts for that arm:

- `impressions`: its impressions under the experiment;
- `clicks`: its clicks on those lists: a click whose `context.request_id` is one of the
  unit's exposed lists, or, for a click without one, on an item such a list showed it;
- `dismissals`: its dismissals of items those lists showed;
- `converted` and `revenue`: whether it bought or converted after its first exposure, and the
  sum of its purchases' values;
- `dwell_s`: its dwell time after its first exposure (the `dwell` events' values);
- `consumed` and `sessions`: its views, clicks, add-to-carts and purchases of items after its
  first exposure, and the distinct sessions they fell in;
- `returned_d1`, `returned_d7`: whether it was active again on day 1 (the 24 hours from one
  day after its first exposure) and on day 7; NaN when the log ends before that day does.

Units of the long-term holdout that were eligible for the experiment are kept apart, so
that a report can show them beside the arms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from penchant.schema import Event
from penchant.schema.common import to_micros, utcnow
from penchant.schema.experiments import Experiment
from penchant.store import EventFilter, EventStore

DAY_US = 86_400 * 1_000_000
#: Events that count as consuming an item.
CONSUMPTION = frozenset({"view", "click", "add_to_cart", "purchase"})
#: Events that count as a conversion.
CONVERSION = frozenset({"purchase", "conversion"})
#: The arm name the long-term holdout's units get in a unit table.
HOLDOUT = "(holdout)"

FloatArray = npt.NDArray[np.float64]


@dataclass
class _Unit:
    arm: str
    first_us: int
    segment: str
    requests: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)
    impressions: int = 0
    clicks: int = 0
    dismissals: int = 0
    converted: bool = False
    revenue: float = 0.0
    dwell_s: float = 0.0
    consumed: int = 0
    sessions: set[str] = field(default_factory=set)
    active_days: set[int] = field(default_factory=set)
    # per day since the experiment's start: impressions and clicks (lift over time)
    daily: dict[int, list[int]] = field(default_factory=dict)
    # the same outcomes in the pre-period (CUPED's covariates)
    pre_converted: bool = False
    pre_revenue: float = 0.0
    pre_dwell_s: float = 0.0


@dataclass(frozen=True)
class UnitTable:
    """Every exposed unit of an experiment, one row each (see the module docstring).

    Attributes:
        units: the unit ids.
        arms: each unit's arm (`HOLDOUT` for units of the long-term holdout).
        segments: each unit's segment (the device of its first exposure, or `unknown`).
        first_exposure_us: when each unit was first exposed (microseconds since the epoch).
        metrics: per-unit values by name, each aligned with `units`.
        daily_impressions, daily_clicks: (units, days) counts per day since `start`.
        start: the experiment's first start.
        end: the end of the data analysed.
    """

    units: list[str]
    arms: npt.NDArray[np.str_]
    segments: npt.NDArray[np.str_]
    first_exposure_us: npt.NDArray[np.int64]
    metrics: dict[str, FloatArray]
    daily_impressions: npt.NDArray[np.int64]
    daily_clicks: npt.NDArray[np.int64]
    start: datetime
    end: datetime

    def arm(self, name: str) -> npt.NDArray[np.bool_]:
        """The rows of one arm."""
        return np.asarray(self.arms == name)


def experiment_units(
    events: EventStore,
    tenant: str,
    experiment: Experiment,
    *,
    until: datetime | None = None,
    pre_days: float = 14.0,
    batch_size: int = 10_000,
) -> UnitTable:
    """Read an experiment's units and what each did, from its first start to `until`, and
    in the `pre_days` before the start (CUPED's covariates: `pre_converted`,
    `pre_revenue`, `pre_dwell_s`).

    Args:
        events: the event log.
        tenant: the experiment's tenant.
        experiment: the experiment (its history gives its first start).
        until: the end of the data; default now.
        pre_days: the length of the pre-period (0 for none).
        batch_size: events read at a time.

    Returns:
        The unit table; empty when nothing was exposed yet.
    """
    end = until or utcnow()
    start = experiment.history[0].at if experiment.history else end
    start_us, end_us = to_micros(start), to_micros(end)
    units: dict[str, _Unit] = {}
    where = EventFilter(types=("impression",), since=start, until=end)
    for batch in events.scan(tenant, where, batch_size=batch_size):
        for event in batch:
            _exposure(units, experiment, event, start_us)
    # every other type counts (any activity is a return), impressions were read already
    others = tuple(t for t in events.event_types(tenant) if t != "impression")
    if units and others:
        outcomes = EventFilter(types=others, since=start, until=end)
        for batch in events.scan(tenant, outcomes, batch_size=batch_size):
            for event in batch:
                unit = _unit_of(units, experiment, event)
                if unit is not None:
                    _outcome(unit, event, start_us)
    if units and pre_days > 0:
        since = start - timedelta(days=pre_days)
        before = EventFilter(types=(*sorted(CONVERSION), "dwell"), since=since, until=start)
        for batch in events.scan(tenant, before, batch_size=batch_size):
            for event in batch:
                unit = _unit_of(units, experiment, event)
                if unit is not None:
                    _pre_outcome(unit, event)
    return _table(units.items(), start, end, start_us, end_us)


def _pre_outcome(unit: _Unit, event: Event) -> None:
    if event.type in CONVERSION:
        unit.pre_converted = True
        if event.type == "purchase":
            unit.pre_revenue += float(event.value or 0.0)
    elif event.type == "dwell":
        unit.pre_dwell_s += float(event.value or 0.0)


def _exposure(
    units: dict[str, _Unit], experiment: Experiment, event: Event, start_us: int
) -> tuple[str, int] | None:
    """Count an exposure (an impression, or a decision) of the experiment to its unit;
    return the unit's key and the day since the start, or None when it is not one."""
    context = event.context
    if context is None or context.attributes.get("experiment") != experiment.id:
        return None
    key = event.user_id if experiment.unit == "user" else event.session_id
    if key is None:
        return None
    held = context.attributes.get("holdout") is True
    arm = HOLDOUT if held else str(context.attributes.get("arm"))
    at = to_micros(event.timestamp)
    unit = units.get(key)
    if unit is None:
        unit = units[key] = _Unit(arm, at, context.device or "unknown")
    elif at < unit.first_us:
        unit.first_us, unit.segment = at, context.device or "unknown"
    unit.impressions += 1
    if context.request_id is not None:
        unit.requests.add(context.request_id)
    if event.item_id is not None:
        unit.items.add(event.item_id)
    day = (at - start_us) // DAY_US
    unit.daily.setdefault(day, [0, 0])[0] += 1
    return key, day


def _unit_of(units: dict[str, _Unit], experiment: Experiment, event: Event) -> _Unit | None:
    key = event.user_id if experiment.unit == "user" else event.session_id
    return units.get(key) if key is not None else None


def _outcome(unit: _Unit, event: Event, start_us: int) -> None:
    at = to_micros(event.timestamp)
    if at < unit.first_us:
        return
    unit.active_days.add((at - unit.first_us) // DAY_US)
    kind, context = event.type, event.context
    request = context.request_id if context is not None else None
    on_list = request in unit.requests if request is not None else event.item_id in unit.items
    if kind == "click" and on_list:
        unit.clicks += 1
        day = unit.daily.setdefault((at - start_us) // DAY_US, [0, 0])
        day[1] += 1
    elif kind == "dismiss" and on_list:
        unit.dismissals += 1
    if kind in CONVERSION:
        unit.converted = True
        if kind == "purchase":
            unit.revenue += float(event.value or 0.0)
    elif kind == "dwell":
        unit.dwell_s += float(event.value or 0.0)
    if kind in CONSUMPTION and event.item_id is not None:
        unit.consumed += 1
        unit.sessions.add(event.session_id or f"user:{event.user_id}")


def _table(
    rows: Iterable[tuple[str, _Unit]], start: datetime, end: datetime, start_us: int, end_us: int
) -> UnitTable:
    listed = sorted(rows, key=lambda r: (r[1].first_us, r[0]))
    n = len(listed)
    days = max(1, int((end_us - start_us) // DAY_US) + 1)
    daily = np.zeros((2, n, days), dtype=np.int64)
    columns: dict[str, list[float]] = {
        name: []
        for name in (
            "impressions",
            "clicks",
            "dismissals",
            "converted",
            "revenue",
            "dwell_s",
            "consumed",
            "sessions",
            "returned_d1",
            "returned_d7",
            "pre_converted",
            "pre_revenue",
            "pre_dwell_s",
        )
    }
    for row, (_, u) in enumerate(listed):
        for day, (shown, clicked) in u.daily.items():
            if 0 <= day < days:
                daily[0, row, day], daily[1, row, day] = shown, clicked
        columns["impressions"].append(u.impressions)
        columns["clicks"].append(u.clicks)
        columns["dismissals"].append(u.dismissals)
        columns["converted"].append(float(u.converted))
        columns["revenue"].append(u.revenue)
        columns["dwell_s"].append(u.dwell_s)
        columns["consumed"].append(u.consumed)
        columns["sessions"].append(len(u.sessions))
        columns["pre_converted"].append(float(u.pre_converted))
        columns["pre_revenue"].append(u.pre_revenue)
        columns["pre_dwell_s"].append(u.pre_dwell_s)
        for n_day, name in ((1, "returned_d1"), (7, "returned_d7")):
            observed = u.first_us + (n_day + 1) * DAY_US <= end_us
            columns[name].append(float(n_day in u.active_days) if observed else np.nan)
    return UnitTable(
        units=[key for key, _ in listed],
        arms=np.array([u.arm for _, u in listed], dtype=np.str_),
        segments=np.array([u.segment for _, u in listed], dtype=np.str_),
        first_exposure_us=np.array([u.first_us for _, u in listed], dtype=np.int64),
        metrics={k: np.asarray(v, dtype=np.float64) for k, v in columns.items()},
        daily_impressions=daily[0],
        daily_clicks=daily[1],
        start=start,
        end=end,
    )


def slot_units(
    events: EventStore,
    tenant: str,
    experiment: Experiment,
    *,
    until: datetime | None = None,
    batch_size: int = 10_000,
) -> UnitTable:
    """The units of an experiment on a slot: their decisions and the rewards credited to them.

    A unit's exposure is a `decision` event logged under the experiment with its arm; its
    outcomes are the `reward` events of those decisions (what the slot's reward credited,
    capped per decision). Metrics: `decisions`, `reward` (their sum) and `rewarded` (the
    decisions that earned any); the daily columns count decisions and rewarded decisions.
    """
    end = until or utcnow()
    start = experiment.history[0].at if experiment.history else end
    start_us, end_us = to_micros(start), to_micros(end)
    units: dict[str, _Unit] = {}
    owner: dict[str, tuple[str, int]] = {}  # decision id -> unit, day
    rewards: dict[str, float] = {}
    where = EventFilter(types=("decision", "reward"), since=start, until=end)
    for batch in events.scan(tenant, where, batch_size=batch_size):
        for event in batch:
            context = event.context
            if context is None or context.decision_id is None:
                continue
            if event.type == "reward":
                rewards[context.decision_id] = rewards.get(context.decision_id, 0.0) + float(
                    event.value or 0.0
                )
                continue
            exposed = _exposure(units, experiment, event, start_us)
            if exposed is not None:
                owner[context.decision_id] = exposed
    for decision_id, amount in rewards.items():
        found = owner.get(decision_id)
        if found is None or amount <= 0:
            continue
        unit = units[found[0]]
        unit.revenue += amount  # the reward sum, in the revenue slot of `_Unit`
        unit.clicks += 1
        unit.daily.setdefault(found[1], [0, 0])[1] += 1
    table = _table(units.items(), start, end, start_us, end_us)
    metrics = {
        "decisions": table.metrics["impressions"],
        "reward": table.metrics["revenue"],
        "rewarded": table.metrics["clicks"],
    }
    return UnitTable(
        units=table.units,
        arms=table.arms,
        segments=table.segments,
        first_exposure_us=table.first_exposure_us,
        metrics=metrics,
        daily_impressions=table.daily_impressions,
        daily_clicks=table.daily_clicks,
        start=start,
        end=end,
    )
