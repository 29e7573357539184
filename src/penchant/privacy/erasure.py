"""Erasure (GDPR Art. 17): every place that holds a person's data registers an eraser, and
`erase_user` runs them all and returns a receipt with per-place counts.

The store's eraser runs first, in one transaction: events, the person's dictionary code, the
sessions they used, their profile, consent ledger and controls go, and a tombstone (a
keyed hash of the id) is left so that a later write for the id is refused. The erasers
registered after it (online state, model artifacts, the served models, bandit state) reach
what lives outside the database. Item-side structures that the person's data shaped (item
factors, neighbour lists, popularity) are rebuilt by a retraining that the erasure schedules.

A profile reset ("reset my profile") runs the same erasers but keeps the person: their
catalog record, consent ledger and controls stay, and no tombstone refuses their later
events.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from penchant.errors import InvalidInput
from penchant.privacy.audit import AuditLog
from penchant.store import Store


@dataclass
class ErasureSubject:
    """Who is being erased, and what the erasers found out along the way.

    Attributes:
        tenant: the tenant.
        user_id: the person's id.
        job_id: the erasure job.
        sessions: ids of the sessions this person used (found by the store's eraser).
    """

    tenant: str
    user_id: str
    job_id: str
    sessions: list[str] = field(default_factory=list)


#: An eraser: removes a person's data from one place and says how much, by part name.
Eraser = Callable[[ErasureSubject], Mapping[str, int]]


@dataclass(frozen=True)
class ErasureReceipt:
    """What one erasure did.

    Attributes:
        job_id: the job, whose status (and its retraining's) can be looked up later.
        counts: what each place removed (`events`, `sessions`, `profile`, `consents`,
            `controls`, `online_keys`, `model_rows`, ...).
        erasers: the names of the erasers that ran, in order.
        seconds: how long the immediate part took.
        rebuild_due_at: when the retraining of item-side structures is due at the latest.
    """

    job_id: str
    counts: dict[str, int]
    erasers: list[str]
    seconds: float
    rebuild_due_at: datetime


class ErasureRegistry:
    """The erasers of a deployment, run in the order they were registered."""

    def __init__(self) -> None:
        self._erasers: dict[str, Eraser] = {}

    def register(self, name: str, eraser: Eraser) -> None:
        """Add an eraser.

        Raises:
            ValueError: the name is taken.
        """
        if name in self._erasers:
            raise ValueError(f"an eraser named {name!r} is already registered")
        self._erasers[name] = eraser

    def names(self) -> list[str]:
        """The registered erasers, in the order they run."""
        return list(self._erasers)

    def run(self, subject: ErasureSubject) -> dict[str, int]:
        """Run every eraser on one person; return the counts of all of them together."""
        counts: dict[str, int] = {}
        for eraser in self._erasers.values():
            for part, n in eraser(subject).items():
                counts[part] = counts.get(part, 0) + int(n)
        return counts


def store_eraser(
    store: Store, rebuild_deadline_s: float, actor: str, *, reset: bool = False
) -> Eraser:
    """The eraser of the database: one transaction, the job and its tombstone recorded.

    With `reset`, a profile reset: the person's record, consent and controls stay, and the
    tombstone is lifted at once (see `SqlPrivacyStore.erase_user`).
    """

    def erase(subject: ErasureSubject) -> Mapping[str, int]:
        due = datetime.now(UTC) + timedelta(seconds=rebuild_deadline_s)
        rows = store.privacy.erase_user(
            subject.tenant,
            subject.user_id,
            job_id=subject.job_id,
            actor=actor,
            rebuild_due_at=due,
            reset=reset,
        )
        subject.sessions = rows.sessions
        return rows.counts

    return erase


def erase_user(
    store: Store,
    registry: ErasureRegistry,
    tenant: str,
    user_id: str,
    *,
    rebuild_deadline_s: float,
    audit: AuditLog | None = None,
    actor: str = "cli",
    reset: bool = False,
) -> ErasureReceipt:
    """Erase a person everywhere the registry reaches.

    Args:
        store: the deployment's store (where the job is recorded).
        registry: the erasers; the first must be the store's (`store_eraser`).
        tenant: the tenant.
        user_id: the person.
        rebuild_deadline_s: the retraining of item-side structures is due within this.
        audit: where the operation is recorded (without the id: only its keyed hash).
        actor: who asked (an API key id, or `cli`).
        reset: a profile reset (the registry's store eraser must be made with `reset`): the
            job is `rs_...` and audited as `user.reset`.

    Returns:
        The receipt.

    Raises:
        InvalidInput: an empty user id.
    """
    if not user_id:
        raise InvalidInput("user_id must not be empty", field="user_id")
    started = time.perf_counter()
    prefix, action = ("rs", "user.reset") if reset else ("er", "user.erase")
    subject = ErasureSubject(
        tenant=tenant, user_id=user_id, job_id=f"{prefix}_{secrets.token_hex(8)}"
    )
    try:
        counts = registry.run(subject)
    except Exception:
        if audit is not None:
            audit.record(tenant, actor, action, audit.user(tenant, user_id), "failed")
        raise
    store.privacy.finish(subject.job_id, counts)
    if audit is not None:
        audit.record(tenant, actor, action, audit.user(tenant, user_id), "ok")
    job = store.privacy.job(tenant, subject.job_id)
    due = job.rebuild_due_at if job is not None and job.rebuild_due_at else datetime.now(UTC)
    return ErasureReceipt(
        job_id=subject.job_id,
        counts=counts,
        erasers=registry.names(),
        seconds=time.perf_counter() - started,
        rebuild_due_at=due,
    )
