"""Experiment records: an A/B/n test of pipelines on one surface, its arms and its history."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from penchant.schema.common import AttributeValue, Id, UtcDatetime

ExperimentStatus = Literal["draft", "running", "stopped"]
#: `ab`: each unit is served one arm. `interleaving`: each list of a unit in the experiment is
#: a team draft of both arms' lists (two arms exactly), and clicks vote for the arm that
#: placed the clicked item.
ExperimentKind = Literal["ab", "interleaving"]
#: What is randomized: a known user, or an anonymous session.
Unit = Literal["user", "session"]

_NO_NUL = r"^[^\x00]*$"


class Arm(BaseModel):
    """One arm of an experiment: the pipeline (a configured surface) its units are served, or,
    in an experiment on a slot, the bandit policy that chooses the slot's variant for them.

    Attributes:
        name: the arm's name, such as `control` or `personalized`.
        surface: the surface whose pipeline this arm serves (`default` for the default
            pipeline); it must be configured when the experiment starts.
        policy: the policy's config, such as `{"name": "linucb", "alpha": 0.5}` (experiments
            on a slot); each arm's policy learns from its own units only.
        weight: its share of the experiment's traffic, relative to the other arms' weights.
    """

    model_config = ConfigDict(extra="forbid")

    name: Id
    surface: Id | None = None
    policy: dict[str, AttributeValue] | None = Field(default=None, max_length=20)
    weight: float = Field(default=1.0, gt=0.0, le=1_000_000.0)


class Change(BaseModel):
    """A status or ramp change, kept so that an analysis knows the allocation at any time."""

    model_config = ConfigDict(extra="forbid")

    at: UtcDatetime
    status: ExperimentStatus
    ramp: float


class Experiment(BaseModel):
    """An A/B/n test: units asking for `surface` are split between the arms' pipelines (or,
    on a `slot`, between the arms' bandit policies).

    The first arm is the control every other arm is compared with. Assignment hashes the unit
    (user or session id) with the experiment's `salt`, so a unit keeps its arm across
    requests, workers and restarts; raising `ramp` only adds units. Units in the tenant's
    long-term holdout (when `holdout` is true) are never in an experiment.

    Attributes:
        id: the experiment's name.
        surface: the surface whose recommendation requests it splits; or
        slot: the slot whose decisions it splits (give one of the two).
        arms: two to twenty arms with distinct names; the first is the control.
        kind: `ab` (each unit is served one arm) or `interleaving` (each list is a team
            draft of the two arms' lists; `weight` is not used).
        unit: what is randomized; requests without one are served the surface as usual.
        ramp: the share of units that enter (0 to 1).
        holdout: whether the tenant's long-term holdout is kept out of it.
        salt: the assignment's salt; set when the experiment is created, fixed after.
        status: draft (defined, serves nothing), running, or stopped (serves nothing again).
        history: every start, stop and ramp change, oldest first.
    """

    model_config = ConfigDict(extra="forbid")

    id: Id
    description: str = Field(default="", max_length=2_000, pattern=_NO_NUL)
    surface: Id | None = None
    slot: Id | None = None
    arms: list[Arm] = Field(min_length=2, max_length=20)
    kind: ExperimentKind = "ab"
    unit: Unit = "user"
    ramp: float = Field(default=1.0, ge=0.0, le=1.0)
    holdout: bool = True
    salt: Id | None = None
    status: ExperimentStatus = "draft"
    history: list[Change] = Field(default_factory=list, max_length=10_000)
    created_at: UtcDatetime | None = None

    @field_validator("arms")
    @classmethod
    def _distinct(cls, value: list[Arm]) -> list[Arm]:
        names = [a.name for a in value]
        if len(set(names)) != len(names):
            raise ValueError("two arms have the same name")
        return value

    @model_validator(mode="after")
    def _target(self) -> Experiment:
        if (self.surface is None) == (self.slot is None):
            raise ValueError("give a surface (arms of pipelines) or a slot (arms of policies)")
        for i, arm in enumerate(self.arms):
            if self.surface is not None and (arm.surface is None or arm.policy is not None):
                raise ValueError(f"arms[{i}]: an arm on a surface names a surface, no policy")
            if self.slot is not None and (arm.policy is None or arm.surface is not None):
                raise ValueError(f"arms[{i}]: an arm on a slot names a policy, no surface")
        if self.kind == "interleaving" and (len(self.arms) != 2 or self.slot is not None):
            raise ValueError("an interleaving experiment compares exactly two arms of a surface")
        return self

    @model_validator(mode="after")
    def _history(self) -> Experiment:
        if any(b.at < a.at for a, b in zip(self.history, self.history[1:], strict=False)):
            raise ValueError("history is not in time order")
        return self

    @property
    def target(self) -> str:
        """What it splits: the surface's name, or `slot:` and the slot's (stored and looked
        up by this, so that one experiment at a time runs on each)."""
        return self.surface if self.surface is not None else f"slot:{self.slot}"

    @property
    def control(self) -> Arm:
        """The arm every other arm is compared with."""
        return self.arms[0]

    def arm(self, name: str) -> Arm | None:
        """The arm of that name, or None."""
        return next((a for a in self.arms if a.name == name), None)
