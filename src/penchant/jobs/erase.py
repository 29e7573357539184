"""The erase job: the erasers of a deployment, `erase` (CLI and service), `reset_profile`
(the same erasers keeping the person), and the retraining that rebuilds item-side structures
after erasures (`rebuild`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from penchant.jobs.registry import EXCLUSIONS, ModelRegistry
from penchant.jobs.store import settings_hasher
from penchant.jobs.train import train
from penchant.models.arrays import scrub_rows, scrub_user, user_codes
from penchant.privacy.audit import AuditLog
from penchant.privacy.consent import forget_preferences
from penchant.privacy.erasure import (
    ErasureReceipt,
    ErasureRegistry,
    ErasureSubject,
    erase_user,
    store_eraser,
)
from penchant.ranking.state import OnlineState
from penchant.settings import Settings
from penchant.store import Store
from penchant.store.state import StateStore

#: The state key, per tombstone, that tells every serving worker a person is gone until the
#: retraining without them is served (their rows may still be in a worker's memory).
GONE_PREFIX = "gone:"


def erasure_registry(
    settings: Settings,
    store: Store,
    state: StateStore,
    *,
    actor: str = "cli",
    served: Callable[[str, str], int] | None = None,
    reset: bool = False,
) -> ErasureRegistry:
    """Every eraser of a deployment, the store's first.

    Args:
        settings: the deployment.
        store: its store.
        state: its online state.
        actor: who asks (recorded with the job).
        served: forgets a person in this process's served models: `(tenant, user) -> rows`.
        reset: the erasers of a profile reset: the person's record, consent and controls
            (and their mirror in the online state) stay, and no tombstone is left.
    """
    registry = ErasureRegistry()
    deadline = settings.privacy.rebuild_deadline_s
    registry.register("store", store_eraser(store, deadline, actor, reset=reset))
    registry.register("online_state", _online_eraser(state))
    if not reset:
        registry.register(
            "preferences",
            lambda s: {"preference_keys": forget_preferences(state, s.tenant, s.user_id)},
        )
    registry.register("serving_guard", _guard_eraser(store, state))
    registry.register("model_artifacts", _artifact_eraser(settings))
    if served is not None:
        registry.register("served_models", lambda s: {"served_rows": served(s.tenant, s.user_id)})
    return registry


def _online_eraser(state: StateStore) -> Callable[[ErasureSubject], Mapping[str, int]]:
    def erase(subject: ErasureSubject) -> Mapping[str, int]:
        online = OnlineState(state, subject.tenant)
        keys = online.forget_user(subject.user_id)
        for session in subject.sessions:
            keys += state.delete_prefix(subject.tenant, f"act:s:{session}:")
        return {"online_keys": keys}

    return erase


def _guard_eraser(store: Store, state: StateStore) -> Callable[[ErasureSubject], Mapping[str, int]]:
    def erase(subject: ErasureSubject) -> Mapping[str, int]:
        tombstone = store.privacy.tombstones.of(subject.tenant, subject.user_id)
        if tombstone is None:
            return {}
        state.set(subject.tenant, GONE_PREFIX + tombstone, b"1")
        return {}

    return erase


def _artifact_eraser(settings: Settings) -> Callable[[ErasureSubject], Mapping[str, int]]:
    def erase(subject: ErasureSubject) -> Mapping[str, int]:
        registry = ModelRegistry(settings.data_dir / "models", subject.tenant)
        rows = versions = 0
        for info in registry.versions():
            folder = registry.path(info.version)
            codes, n_users = user_codes(folder, subject.user_id)
            if not len(codes):
                continue
            scrub_rows(folder / EXCLUSIONS, codes, n_users)
            rows += scrub_user(folder, subject.user_id)
            versions += 1
        return {"model_rows": rows, "model_versions": versions}

    return erase


def erase(
    settings: Settings,
    store: Store,
    state: StateStore,
    user_id: str,
    *,
    tenant: str | None = None,
    actor: str = "cli",
    served: Callable[[str, str], int] | None = None,
    reset: bool = False,
) -> ErasureReceipt:
    """Erase a person from every place of the deployment (see `penchant.privacy.erasure`).

    With `reset`, a profile reset (`reset_profile`).
    """
    tenant = tenant or settings.tenant
    audit = AuditLog(store.engine, settings_hasher(settings))
    registry = erasure_registry(settings, store, state, actor=actor, served=served, reset=reset)
    return erase_user(
        store,
        registry,
        tenant,
        user_id,
        rebuild_deadline_s=settings.privacy.rebuild_deadline_s,
        audit=audit,
        actor=actor,
        reset=reset,
    )


def reset_profile(
    settings: Settings,
    store: Store,
    state: StateStore,
    user_id: str,
    *,
    tenant: str | None = None,
    actor: str = "cli",
    served: Callable[[str, str], int] | None = None,
) -> ErasureReceipt:
    """Reset a person's profile: erase what was learned of them, but keep the person.

    Their events, online state and rows in the saved and served models go as in an erasure;
    their catalog record, consent ledger and controls stay, and no tombstone is left, so
    their later events are accepted. Until the retraining the job schedules is served, the
    serving guard keeps every worker from their old trained rows (their new online activity
    still counts). Audited as `user.reset`; the job (`rs_...`) is looked up as an erasure.
    """
    return erase(
        settings, store, state, user_id, tenant=tenant, actor=actor, served=served, reset=True
    )


@dataclass(frozen=True)
class RebuildResult:
    """What `rebuild` did.

    Attributes:
        pending: erasures waiting for their retraining before this call.
        rebuilt: erasures whose retraining is now served.
        version: the new model version, or None when nothing was trained.
        reason: why it trained or not.
    """

    pending: int
    rebuilt: int
    version: str | None
    reason: str


def rebuild_due(settings: Settings, store: Store, tenant: str, now: datetime) -> bool:
    """Whether the oldest erasure waiting for its retraining is half due.

    Training when half the deadline has passed batches the erasures of that time into one
    retraining and leaves the other half for the training itself and for a retry.
    """
    pending = store.privacy.pending_rebuilds(tenant)
    half = timedelta(seconds=settings.privacy.rebuild_deadline_s / 2)
    return bool(pending) and pending[0].requested_at + half <= now


def lift_guards(store: Store, state: StateStore, tenant: str) -> int:
    """Drop the serving guards of erasures whose retraining is served; return how many."""
    lifted = 0
    for job in store.privacy.rebuilt_since(tenant, datetime.now(UTC) - timedelta(days=7)):
        if job.tombstone:
            lifted += state.delete(tenant, GONE_PREFIX + job.tombstone)
    return lifted


def rebuild(
    settings: Settings,
    store: Store,
    state: StateStore,
    *,
    tenant: str | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> RebuildResult:
    """Retrain without the erased people's data once an erasure's rebuild is half due.

    Any activated training counts (`penchant.jobs.train` marks the erasures it covers), so
    a scheduled retraining may have done this already.

    Args:
        settings: the deployment.
        store: its store.
        state: its online state (the serving guards are lifted once the rebuild is served).
        tenant: default the settings' tenant.
        force: train now if any erasure waits, whatever its deadline.
        now: the current time (tests).
    """
    tenant = tenant or settings.tenant
    now = now or datetime.now(UTC)
    pending = store.privacy.pending_rebuilds(tenant)
    if not pending:
        lift_guards(store, state, tenant)
        return RebuildResult(0, 0, None, "no erasure waits for a retraining")
    if not force and not rebuild_due(settings, store, tenant, now):
        return RebuildResult(len(pending), 0, None, "the oldest erasure is not half due yet")
    result = train(settings.model_copy(update={"tenant": tenant}), store, activate=True)
    rebuilt = [j for j in pending if (store.privacy.job(tenant, j.job_id) or j).rebuilt_at]
    lift_guards(store, state, tenant)
    return RebuildResult(len(pending), len(rebuilt), result.version, "retrained")
