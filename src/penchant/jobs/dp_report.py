"""The differentially private engagement report, with the deployment's privacy budget."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from penchant.jobs.consent import without_consent_to
from penchant.jobs.store import opened_store
from penchant.privacy.dp import Release, budget_status, release_engagement
from penchant.settings import Settings
from penchant.types import Purpose


def engagement_report(
    settings: Settings,
    tenant: str,
    *,
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
    epsilon: float | None = None,
    segments: Sequence[str] | None = None,
    exclude: Collection[str] = (),
) -> dict[str, Any]:
    """Release users, impressions, clicks and CTR per segment, spending from the budget.

    Args:
        settings: the deployment; `privacy.dp_epsilon`, `dp_budget` and `dp_window_s` give
            the default epsilon and the budget per window.
        tenant: whose data.
        by: the user attribute that names each user's segment.
        since: the first instant counted (default: all events).
        until: the first instant not counted (default: no end).
        epsilon: the privacy loss of this report (default: `privacy.dp_epsilon`).
        segments: the public segment names to report; None derives them from the data, which
            does not protect the set of names.
        exclude: user ids to leave out besides those without analytics consent (by the
            consent ledger when the report starts, and `privacy.consent_default`).

    Returns:
        JSON-ready: `report`, `tenant`, `by`, `since`, `until`, `epsilon`, `noise_scale` (the
        Laplace scale of every count), `budget` (`window_s`, `total`, `spent`, `left`, after
        this release) and `segments`: `segment`, `users`, `impressions`, `clicks` (noisy
        counts rounded and floored at zero, which is post-processing) and `ctr` (from the
        unrounded noisy counts; None when the noisy impressions are not positive).

    Raises:
        BudgetExceeded: the report would spend more than is left in the window.
        InvalidInput: a bad epsilon or attribute.
    """
    privacy = settings.privacy
    with opened_store(settings) as store:
        without = without_consent_to(settings, store, tenant, Purpose.ANALYTICS).plus(exclude)
        release = release_engagement(
            store,
            tenant,
            by=by,
            epsilon=privacy.dp_epsilon if epsilon is None else epsilon,
            budget=privacy.dp_budget,
            window_s=privacy.dp_window_s,
            since=since,
            until=until,
            segments=segments,
            exclude=without,
        )
        budget = budget_status(store, tenant, total=privacy.dp_budget, window_s=privacy.dp_window_s)
    return {
        "report": release.report,
        "tenant": tenant,
        "by": by,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "epsilon": release.epsilon,
        "noise_scale": release.noise_scale,
        "budget": {
            "window_s": budget.window_s,
            "total": budget.total,
            "spent": budget.spent,
            "left": budget.left,
        },
        "segments": _segments(release),
    }


def _segments(release: Release) -> list[dict[str, Any]]:
    return [
        {
            "segment": s.segment,
            "users": max(round(s.users), 0),
            "impressions": max(round(s.impressions), 0),
            "clicks": max(round(s.clicks), 0),
            "ctr": None if s.ctr is None else round(s.ctr, 4),
        }
        for s in release.segments
    ]
