"""An experiment's life: define it, start it, ramp it, stop it (the API and the CLI share these).

A draft can be redefined freely. Once started, its arms, target, unit and salt are fixed
(changing them mid-run would mix two experiments in one analysis); only its ramp moves, and
every start, ramp and stop is kept in its history so that an analysis knows the allocation
at any time. At most one experiment runs on a surface (or a slot) at a time.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime
from typing import Any

import numpy as np

from penchant.content.slots import check_slot
from penchant.errors import Conflict, InvalidInput, NotFound
from penchant.evaluation.engagement import UnitTable, experiment_units, slot_units
from penchant.evaluation.experiment_report import METRICS, SLOT_METRICS, experiment_report
from penchant.evaluation.interleaving_report import interleaving_report
from penchant.schema.common import utcnow
from penchant.schema.experiments import Change, Experiment, ExperimentStatus
from penchant.settings import Settings
from penchant.store import Store


def put_experiment(store: Store, tenant: str, experiment: Experiment) -> Experiment:
    """Create an experiment, or redefine one that has not started; it is stored as a draft.

    Without a `salt` a new random one is drawn (an existing draft keeps its own), so that
    two experiments on the same units split them independently; give one to reproduce an
    earlier experiment's split.

    Raises:
        InvalidInput: the definition sets a status or history (start, ramp and stop do).
        Conflict: the experiment has started: its definition is fixed.
    """
    if experiment.status != "draft" or experiment.history:
        raise InvalidInput(
            "status: an experiment is defined as a draft; start, ramp and stop change it",
            field="status",
        )
    existing = store.experiments.get(tenant, experiment.id)
    if existing is not None and existing.status != "draft":
        raise Conflict(
            f"experiment {experiment.id!r} is {existing.status}: its definition is fixed "
            "(define a new experiment instead)"
        )
    salt = experiment.salt or (existing.salt if existing else None) or secrets.token_hex(8)
    created = (existing.created_at if existing else None) or utcnow()
    stored = experiment.model_copy(update={"salt": salt, "created_at": created})
    store.experiments.put(tenant, stored)
    return stored


def get_experiment(store: Store, tenant: str, name: str) -> Experiment:
    """An experiment.

    Raises:
        NotFound: no such experiment.
    """
    experiment = store.experiments.get(tenant, name)
    if experiment is None:
        raise NotFound(f"no experiment {name!r}", field="experiment")
    return experiment


def start_experiment(
    store: Store, settings: Settings, tenant: str, name: str, *, at: datetime | None = None
) -> Experiment:
    """Start a draft (or restart a stopped experiment): its arms are served from now on.

    Raises:
        NotFound: no such experiment.
        InvalidInput: an arm's surface is not configured, or its policy cannot serve the
            experiment's slot.
        Conflict: it is running already, or another experiment runs on its surface or slot.
    """
    experiment = get_experiment(store, tenant, name)
    if experiment.status == "running":
        raise Conflict(f"experiment {name!r} is running already")
    if experiment.slot is not None:
        _check_policies(store, tenant, experiment)
    else:
        known = {*settings.surfaces, settings.serving.default_surface}
        for i, arm in enumerate(experiment.arms):
            if arm.surface not in known:
                raise InvalidInput(
                    f"arms[{i}].surface: no surface {arm.surface!r} is configured; configured: "
                    f"{', '.join(sorted(known))}",
                    field=f"arms[{i}].surface",
                )
    others = store.experiments.list(tenant, surface=experiment.target, status="running")
    if others:
        raise Conflict(f"experiment {others[0].id!r} runs on {experiment.target!r}; stop it first")
    return _change(store, tenant, experiment, "running", experiment.ramp, at)


def _check_policies(store: Store, tenant: str, experiment: Experiment) -> None:
    """Every arm's policy can serve the experiment's slot.

    Raises:
        NotFound: no such slot.
        InvalidInput: an arm's policy cannot serve (the field names the arm).
    """
    slot = store.content.get_slot(tenant, str(experiment.slot))
    if slot is None:
        raise NotFound(f"no slot {experiment.slot!r}", field="slot")
    for i, arm in enumerate(experiment.arms):
        try:
            check_slot(slot.model_copy(update={"policy": arm.policy}))
        except InvalidInput as exc:
            where = f"arms[{i}].{exc.field}" if exc.field else f"arms[{i}].policy"
            raise InvalidInput(f"{where}: {exc.message}", field=where) from exc


def ramp_experiment(
    store: Store, tenant: str, name: str, ramp: float, *, at: datetime | None = None
) -> Experiment:
    """Set the share of units that enter the experiment (raising it only adds units).

    Raises:
        NotFound: no such experiment.
        InvalidInput: `ramp` is not in [0, 1].
        Conflict: the experiment has stopped.
    """
    if not 0.0 <= ramp <= 1.0:
        raise InvalidInput("ramp: give a share from 0 to 1", field="ramp")
    experiment = get_experiment(store, tenant, name)
    if experiment.status == "stopped":
        raise Conflict(f"experiment {name!r} has stopped; start it again to ramp it")
    return _change(store, tenant, experiment, experiment.status, ramp, at)


def stop_experiment(
    store: Store, tenant: str, name: str, *, at: datetime | None = None
) -> Experiment:
    """Stop serving the experiment's arms; its units are served the surface as usual.

    Raises:
        NotFound: no such experiment.
        Conflict: it is not running.
    """
    experiment = get_experiment(store, tenant, name)
    if experiment.status != "running":
        raise Conflict(f"experiment {name!r} is {experiment.status}, not running")
    return _change(store, tenant, experiment, "stopped", experiment.ramp, at)


def delete_experiment(store: Store, tenant: str, name: str) -> None:
    """Delete an experiment that is not running (its logged exposures stay in the log).

    Raises:
        NotFound: no such experiment.
        Conflict: it is running.
    """
    experiment = get_experiment(store, tenant, name)
    if experiment.status == "running":
        raise Conflict(f"experiment {name!r} is running; stop it first")
    store.experiments.delete(tenant, name)


def report_experiment(
    store: Store,
    tenant: str,
    name: str,
    *,
    until: datetime | None = None,
    alpha: float = 0.05,
    segment_by: str = "device",
) -> dict[str, Any]:
    """The experiment's report from the event log, with data up to `until` (default now):
    see `penchant.evaluation.experiment_report` (A/B) and
    `penchant.evaluation.interleaving_report`.

    Args:
        store: the store.
        tenant: the experiment's tenant.
        name: the experiment.
        until: the end of the data.
        alpha: the significance level.
        segment_by: `device` (of each unit's first exposure) or the name of a user
            attribute (from the catalog's users; `unknown` for a user without it).

    Raises:
        NotFound: no such experiment.
        InvalidInput: alpha outside (0, 1), or segments by a user attribute for an
            experiment whose units are sessions.
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidInput("alpha: give a level between 0 and 1", field="alpha")
    experiment = get_experiment(store, tenant, name)
    if experiment.kind == "interleaving":
        return interleaving_report(store.events, tenant, experiment, until=until, alpha=alpha)
    if experiment.slot is not None:
        table = slot_units(store.events, tenant, experiment, until=until)
        metrics = SLOT_METRICS
    else:
        table = experiment_units(store.events, tenant, experiment, until=until)
        metrics = METRICS
    if segment_by != "device":
        if experiment.unit != "user":
            raise InvalidInput(
                "segment_by: the units of this experiment are sessions; segment by device",
                field="segment_by",
            )
        table = _by_attribute(store, tenant, table, segment_by)
    report = experiment_report(table, experiment, alpha=alpha, metrics=metrics)
    report["segment_by"] = segment_by
    return report


def _by_attribute(store: Store, tenant: str, table: UnitTable, attribute: str) -> UnitTable:
    """The table with each unit's segment taken from its user's attribute."""
    wanted = set(table.units)
    found: dict[str, str] = {}
    for batch in store.catalog.scan_users(tenant):
        for user in batch:
            if user.id in wanted and attribute in user.attributes:
                found[user.id] = str(user.attributes[attribute])
    segments = np.array([found.get(u, "unknown") for u in table.units], dtype=np.str_)
    return dataclasses.replace(table, segments=segments)


def _change(
    store: Store,
    tenant: str,
    experiment: Experiment,
    status: ExperimentStatus,
    ramp: float,
    at: datetime | None,
) -> Experiment:
    when = at or utcnow()
    last = experiment.history[-1].at if experiment.history else None
    if last is not None and when < last:
        when = last  # clocks of two machines: the history stays in order
    change = Change(at=when, status=status, ramp=ramp)
    changed = experiment.model_copy(
        update={"status": status, "ramp": ramp, "history": [*experiment.history, change]}
    )
    store.experiments.put(tenant, changed)
    return changed
