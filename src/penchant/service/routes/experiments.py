"""/v1/experiments: define A/B/n experiments of pipelines on a surface; start, ramp, stop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from penchant.ingest.validate import parse_record
from penchant.jobs.experiments import (
    delete_experiment,
    get_experiment,
    put_experiment,
    ramp_experiment,
    report_experiment,
    start_experiment,
    stop_experiment,
)
from penchant.schema.experiments import Experiment
from penchant.service.deps import BodyDep, ExperimentsAdmin, SettingsDep, StoreDep
from penchant.service.experiments import LiveExperiments
from penchant.service.schemas import ERROR_RESPONSES, NOT_FOUND, json_body

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], responses=ERROR_RESPONSES)

ExperimentId = Annotated[str, Path(alias="id", min_length=1, max_length=256)]


class ExperimentsOut(BaseModel):
    """Every experiment of the tenant."""

    experiments: list[Experiment]


class RampIn(BaseModel):
    """The share of units that enter the experiment."""

    ramp: float = Field(ge=0.0, le=1.0)


def _changed(request: Request, tenant: str, experiment: Experiment) -> Experiment:
    """This worker serves the change at once (the others within `experiments.refresh_s`)."""
    live: LiveExperiments = request.app.state.experiments
    live.forget(tenant, experiment.target)
    return experiment


@router.get("", response_model=ExperimentsOut)
def list_experiments(key: ExperimentsAdmin, store: StoreDep) -> ExperimentsOut:
    """Every experiment of the tenant, by id."""
    return ExperimentsOut(experiments=store.experiments.list(key.tenant))


@router.put(
    "/{id}",
    response_model=Experiment,
    openapi_extra=json_body(Experiment, ("id",)),
)
def put(
    key: ExperimentsAdmin, store: StoreDep, experiment_id: ExperimentId, body: BodyDep
) -> Experiment:
    """Define an experiment as a draft, or redefine a draft: its surface, arms (the first is
    the control), unit, ramp and holdout. 409 once it has started."""
    return put_experiment(store, key.tenant, parse_record(body, Experiment, experiment_id))


@router.get("/{id}", response_model=Experiment, responses=NOT_FOUND)
def get(key: ExperimentsAdmin, store: StoreDep, experiment_id: ExperimentId) -> Experiment:
    """An experiment, with its status and the history of its starts, ramps and stops."""
    return get_experiment(store, key.tenant, experiment_id)


@router.delete("/{id}", status_code=204, responses=NOT_FOUND)
def delete(key: ExperimentsAdmin, store: StoreDep, experiment_id: ExperimentId) -> Response:
    """Delete an experiment that is not running (its logged exposures stay in the log)."""
    delete_experiment(store, key.tenant, experiment_id)
    return Response(status_code=204)


@router.post("/{id}/{action}", response_model=Experiment, responses=NOT_FOUND)
def change(
    key: ExperimentsAdmin,
    store: StoreDep,
    settings: SettingsDep,
    request: Request,
    experiment_id: ExperimentId,
    action: Literal["start", "stop"],
) -> Experiment:
    """Start an experiment (its arms are served from now on) or stop it (its units are
    served the surface as usual again)."""
    if action == "start":
        changed = start_experiment(store, settings, key.tenant, experiment_id)
    else:
        changed = stop_experiment(store, key.tenant, experiment_id)
    return _changed(request, key.tenant, changed)


@router.put("/{id}/ramp", response_model=Experiment, responses=NOT_FOUND)
def ramp(
    key: ExperimentsAdmin,
    store: StoreDep,
    request: Request,
    experiment_id: ExperimentId,
    body: RampIn,
) -> Experiment:
    """Set the share of units that enter; raising it only adds units, none changes arm."""
    changed = ramp_experiment(store, key.tenant, experiment_id, body.ramp)
    return _changed(request, key.tenant, changed)


@router.get("/{id}/report", responses=NOT_FOUND)
def report(
    key: ExperimentsAdmin,
    store: StoreDep,
    experiment_id: ExperimentId,
    alpha: Annotated[float, Query(gt=0.0, lt=1.0, description="significance level")] = 0.05,
    until: Annotated[
        datetime | None, Query(description="the end of the data (ISO 8601; default now)")
    ] = None,
    segment_by: Annotated[
        str,
        Query(
            min_length=1,
            max_length=256,
            description="`device`, or the name of a user attribute to segment by",
        ),
    ] = "device",
) -> dict[str, Any]:
    """Each metric per arm, each arm's lift over the control with its interval, Holm-corrected
    p-values and verdicts, always-valid p-values, a sample-ratio check, per-segment tables
    and the CTR lift day by day, computed from the event log (its units are users or
    sessions, as randomized). For an interleaving experiment: the lists each arm's team won,
    and the preference for the second arm with its interval and sign-test p-value."""
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return report_experiment(
        store, key.tenant, experiment_id, alpha=alpha, until=until, segment_by=segment_by
    )
