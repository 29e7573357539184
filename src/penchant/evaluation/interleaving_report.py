"""An interleaving experiment's report: which arm's team the clicks preferred, from the log.

Every interleaved list was logged as impressions that name, per position, the arm whose team
placed the item. A click on one of those lists (by its `context.request_id`; at the position
its context gives, else at the shown item's position) is a vote for that arm. A list whose
clicks favour one team is won by it; ties and lists without clicks decide nothing. The sign
test over the decided lists (`penchant.experiments.interleaving.preference`) says whether
the treatment (the second arm) is preferred.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from penchant.experiments.interleaving import Interleaved, credit, preference
from penchant.schema import Event
from penchant.schema.common import utcnow
from penchant.schema.experiments import Experiment
from penchant.store import EventFilter, EventStore


@dataclass
class _List:
    unit: str | None
    positions: dict[int, tuple[str, int]] = field(default_factory=dict)  # item, team
    clicked: set[int] = field(default_factory=set)


def interleaving_report(
    events: EventStore,
    tenant: str,
    experiment: Experiment,
    *,
    until: datetime | None = None,
    alpha: float = 0.05,
    batch_size: int = 10_000,
) -> dict[str, Any]:
    """Read the experiment's interleaved lists and their clicks; test the preference.

    Returns:
        `{"kind": "interleaving", "control", "treatment", "lists", "units", "wins":
        {arm: n}, "ties", "treatment_share", "delta", "delta_ci", "p_value", "verdict"}`.
    """
    end = until or utcnow()
    start = experiment.history[0].at if experiment.history else end
    control, treatment = (a.name for a in experiment.arms)
    team_of = {control: 0, treatment: 1}
    lists: dict[str, _List] = {}
    shown = EventFilter(types=("impression",), since=start, until=end)
    for batch in events.scan(tenant, shown, batch_size=batch_size):
        for event in batch:
            _impression(lists, experiment, team_of, event)
    clicks = EventFilter(types=("click",), since=start, until=end)
    for batch in events.scan(tenant, clicks, batch_size=batch_size):
        for event in batch:
            _click(lists, event)
    outcomes = []
    for shown_list in lists.values():
        ordered = sorted(shown_list.positions.items())
        if [p for p, _ in ordered] != list(range(len(ordered))):
            continue  # a list whose impressions were not all logged
        drafted = Interleaved(tuple(i for _, (i, _) in ordered), tuple(t for _, (_, t) in ordered))
        outcomes.append(credit(drafted, shown_list.clicked))
    result = preference(outcomes, alpha=alpha)
    low, high = result.delta_ci
    verdict = "no detectable difference"
    if result.significant:
        verdict = f"{treatment} preferred" if result.delta > 0 else f"{control} preferred"
    return {
        "experiment": experiment.id,
        "kind": "interleaving",
        "surface": experiment.target,
        "control": control,
        "treatment": treatment,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "alpha": alpha,
        "lists": len(outcomes),
        "units": len({x.unit for x in lists.values() if x.unit is not None}),
        "wins": {control: result.wins_a, treatment: result.wins_b},
        "ties": result.ties,
        "treatment_share": _finite(result.share_b),
        "delta": _finite(result.delta),
        "delta_ci": [_finite(low), _finite(high)],
        "p_value": _finite(result.p_value),
        "verdict": verdict,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _impression(
    lists: dict[str, _List], experiment: Experiment, team_of: dict[str, int], event: Event
) -> None:
    context = event.context
    if context is None or context.request_id is None or event.item_id is None:
        return
    attributes = context.attributes
    if attributes.get("experiment") != experiment.id or attributes.get("interleaving") is not True:
        return
    team = team_of.get(str(attributes.get("team")))
    if team is None or context.position is None:
        return
    unit = event.user_id if experiment.unit == "user" else event.session_id
    shown = lists.setdefault(context.request_id, _List(unit))
    shown.positions[context.position] = (event.item_id, team)


def _click(lists: dict[str, _List], event: Event) -> None:
    context = event.context
    if context is None or context.request_id is None:
        return
    shown = lists.get(context.request_id)
    if shown is None:
        return
    if context.position is not None and context.position in shown.positions:
        shown.clicked.add(context.position)
        return
    for position, (item, _) in shown.positions.items():
        if item == event.item_id:
            shown.clicked.add(position)
