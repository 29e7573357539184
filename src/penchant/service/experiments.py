"""Which pipeline a request is served under the experiment running on its surface.

Each worker keeps the running experiment of each surface it was asked for, at most
`experiments.refresh_s` old (a change made through this worker reaches it at once). A
request whose unit (user or session id, as stored) is in the experiment is served its arm's
surface, and the impressions of that list carry the experiment and the arm: the exposure is
logged when the arm is actually served, in the same record as what was shown.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from penchant.experiments.assignment import Allocation, Holdout, assign
from penchant.schema.experiments import Experiment
from penchant.settings import ExperimentSettings
from penchant.store.sql.experiments import SqlExperimentStore


@dataclass(frozen=True)
class Routed:
    """Where one request goes under an experiment.

    Attributes:
        surface: the surface whose pipeline serves it.
        attributes: what its impressions carry: `experiment` and `arm`, or `experiment` and
            `holdout` for a unit of the long-term holdout, or `experiment` and
            `interleaving` (each impression also names its team's arm).
        interleave: for an interleaving experiment, the arms (name, surface) whose lists
            are team-drafted into one, the first the control; empty otherwise.
        policy: for an experiment on a slot, the arm's policy config (None for the
            holdout: the slot's own policy).
    """

    surface: str
    attributes: dict[str, Any]
    interleave: tuple[tuple[str, str], ...] = ()
    policy: dict[str, Any] | None = None

    @property
    def scope(self) -> str:
        """For an arm's policy, the scope of its statistics: `experiment/arm` ("" else)."""
        if self.policy is None:
            return ""
        return f"{self.attributes['experiment']}/{self.attributes['arm']}"


@dataclass(frozen=True)
class _Live:
    experiment: Experiment | None
    allocation: Allocation | None
    loaded_at: float


class LiveExperiments:
    """The running experiments of every tenant and surface, as one worker sees them."""

    def __init__(self, store: SqlExperimentStore, settings: ExperimentSettings) -> None:
        self.store, self.settings = store, settings
        self._holdout = (
            Holdout(settings.holdout_salt, settings.holdout_share)
            if settings.holdout_share > 0
            else None
        )
        self._cache: dict[tuple[str, str], _Live] = {}
        self._lock = threading.Lock()

    def route(
        self, tenant: str, surface: str, user_id: str | None, session_id: str | None
    ) -> Routed | None:
        """The arm (or holdout) of this request's unit, or None to serve it as usual: no
        experiment runs on the surface (or on the slot: `slot:NAME`, see
        `Experiment.target`), the request has no unit of the experiment's kind, or the unit
        is outside the ramp."""
        live = self._live(tenant, surface)
        if live.experiment is None or live.allocation is None:
            return None
        experiment = live.experiment
        unit = user_id if experiment.unit == "user" else session_id
        if unit is None:
            return None
        holdout = self._holdout if experiment.holdout else None
        assigned = assign(live.allocation, unit, holdout=holdout)
        if assigned.reason == "holdout":
            served = self.settings.holdout_surface or surface
            return Routed(served, {"experiment": experiment.id, "holdout": True})
        if assigned.variant is None:
            return None
        if experiment.kind == "interleaving":
            pair = tuple((a.name, a.surface or surface) for a in experiment.arms)
            attributes = {"experiment": experiment.id, "interleaving": True}
            return Routed(pair[0][1], attributes, pair)
        arm = experiment.arm(assigned.variant)
        assert arm is not None  # the allocation's variants are the arms
        attributes = {"experiment": experiment.id, "arm": arm.name}
        return Routed(arm.surface or surface, attributes, policy=arm.policy)

    def forget(self, tenant: str, surface: str) -> None:
        """Drop the cached experiment of a surface (after a change made through this worker)."""
        with self._lock:
            self._cache.pop((tenant, surface), None)

    def _live(self, tenant: str, surface: str) -> _Live:
        key = (tenant, surface)
        live = self._cache.get(key)
        if live is None or time.monotonic() - live.loaded_at > self.settings.refresh_s:
            running = self.store.list(tenant, surface=surface, status="running")
            experiment = running[0] if running else None
            live = _Live(experiment, _allocation(experiment), time.monotonic())
            with self._lock:
                self._cache[key] = live
        return live


def _allocation(experiment: Experiment | None) -> Allocation | None:
    if experiment is None or experiment.salt is None:
        return None
    return Allocation(
        variants=tuple(a.name for a in experiment.arms),
        weights=tuple(a.weight for a in experiment.arms),
        ramp=experiment.ramp,
        salt=experiment.salt,
    )
