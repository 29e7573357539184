"""`penchant privacy erase|erasure|rebuild|reinstate`: a person's right to erasure."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from penchant.cli.common import DataDir, Json, Tenant, err, out, print_json, settings_for
from penchant.errors import NotFound
from penchant.jobs import erase as jobs
from penchant.jobs.store import opened_store, settings_pseudonyms
from penchant.store import ErasureRecord
from penchant.store.state import open_state

UserId = Annotated[str, typer.Argument(help="The person's user id.", show_default=False)]


def erase(
    user_id: UserId, tenant: Tenant = None, data_dir: DataDir = None, json: Json = False
) -> None:
    """Erase a person everywhere: events, profile, consent, online state, model rows.

    Prints the erasure job with what each place removed; item-side structures are rebuilt by
    a retraining before the job's `rebuild_due_at` (`penchant privacy rebuild`).
    """
    settings = settings_for(data_dir)
    if settings.state.url.startswith("memory:") and not json:
        err().print(
            "note: online state is in-process (memory://): a running service keeps its own "
            "copy, so erase through its API (DELETE /v1/users/{id}) while it runs"
        )
    state = open_state(settings.state.url)
    tenant = tenant or settings.tenant
    stored = settings_pseudonyms(settings).user(tenant, user_id)
    with opened_store(settings) as store:
        receipt = jobs.erase(settings, store, state, stored, tenant=tenant)
        job = store.privacy.job(tenant, receipt.job_id)
    assert job is not None
    _show(job, json, seconds=receipt.seconds)


def erasure(
    job_id: Annotated[str, typer.Argument(help="The erasure job id.", show_default=False)],
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Show an erasure job: what it removed, and whether its retraining is served yet."""
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        job = store.privacy.job(tenant or settings.tenant, job_id)
    if job is None:
        raise NotFound(f"no erasure job {job_id!r}")
    _show(job, json)


def rebuild(
    force: Annotated[
        bool, typer.Option("--force", help="Retrain now if any erasure waits.")
    ] = False,
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Retrain without erased people once an erasure's rebuild is half due (or --force)."""
    settings = settings_for(data_dir)
    state = open_state(settings.state.url)
    with opened_store(settings) as store:
        result = jobs.rebuild(settings, store, state, tenant=tenant, force=force)
    if json:
        print_json(result.__dict__)
        return
    out().print(
        f"{result.reason}: {result.rebuilt} of {result.pending} waiting erasures rebuilt"
        + (f" (version {result.version})" if result.version else "")
    )


def reinstate(
    user_id: UserId, tenant: Tenant = None, data_dir: DataDir = None, json: Json = False
) -> None:
    """Lift an erased person's tombstone, so that their events are accepted again."""
    settings = settings_for(data_dir)
    tenant = tenant or settings.tenant
    with opened_store(settings) as store:
        lifted = store.privacy.lift(tenant, settings_pseudonyms(settings).user(tenant, user_id))
    if not lifted:
        raise NotFound("no tombstone for this user id")
    if json:
        print_json({"lifted": lifted})
    else:
        out().print(f"Lifted {lifted} tombstone(s): this id may be used again.")


def _show(job: ErasureRecord, json: bool, seconds: float | None = None) -> None:
    value: dict[str, Any] = {
        "job_id": job.job_id,
        "status": "rebuilt" if job.rebuilt_at is not None else "erased",
        "counts": job.counts,
        "requested_at": job.requested_at.isoformat(),
        "erased_at": job.erased_at.isoformat() if job.erased_at else None,
        "rebuild_due_at": job.rebuild_due_at.isoformat() if job.rebuild_due_at else None,
        "rebuilt_at": job.rebuilt_at.isoformat() if job.rebuilt_at else None,
        "rebuilt_version": job.rebuilt_version,
    }
    if seconds is not None:
        value["seconds"] = round(seconds, 4)
    if json:
        print_json(value)
        return
    console = out()
    console.print(f"Erasure {job.job_id}: {value['status']}")
    for part, n in sorted(job.counts.items()):
        console.print(f"  {part}: {n}")
    console.print(f"  retraining due by {value['rebuild_due_at']}")
