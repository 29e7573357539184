"""A person's consent and controls, applied to their recommendation request.

The hot path reads them with one online-state read (`penchant.privacy.consent`): no
database query per request. A worker makes sure the tenant's preferences are mirrored (the
`pref:mirrored` marker) once per `serving.refresh_s`, along with its model check.
"""

from __future__ import annotations

import logging

from penchant.privacy.consent import MIRRORED, Preferences, mirror_all, read_preferences
from penchant.ranking import FilterSpec, RankingRequest
from penchant.store import Store
from penchant.store.state import StateStore
from penchant.types import Purpose

logger = logging.getLogger("penchant.service")


def personal_request(
    state: StateStore, tenant: str, request: RankingRequest, *, default_granted: bool
) -> RankingRequest:
    """The request as the person's preferences allow (a request without a user is returned
    as is).

    Without personalization consent it ranks without their data (`profiling=false`); their
    muted categories and providers join the request's filters, and the items they are not
    interested in its exclusions.

    Args:
        state: the online state holding the mirrored preferences.
        tenant: the tenant.
        request: the request.
        default_granted: the answer of a person who never answered (`privacy.consent_default`).
    """
    if request.user_id is None:
        return request
    return with_preferences(
        request,
        read_preferences(state, tenant, request.user_id),
        default_granted=default_granted,
    )


def with_preferences(
    request: RankingRequest, preferences: Preferences | None, *, default_granted: bool
) -> RankingRequest:
    """`personal_request` with the preferences already read (None: the defaults)."""
    allowed = default_granted
    if preferences is not None:
        allowed = preferences.allows(Purpose.PERSONALIZATION, default_granted)
    update: dict[str, object] = {}
    if request.profiling and not allowed:
        update["profiling"] = False
    if preferences is not None and preferences.hides:
        if preferences.categories or preferences.providers:
            spec = request.filters or FilterSpec()
            update["filters"] = spec.model_copy(
                update={
                    "exclude_categories": [*spec.exclude_categories, *preferences.categories],
                    "exclude_providers": [*spec.exclude_providers, *preferences.providers],
                }
            )
        if preferences.items:
            update["exclude"] = [*request.exclude, *preferences.items]
    return request.model_copy(update=update) if update else request


def ensure_mirrored(store: Store, state: StateStore, tenant: str) -> None:
    """Mirror every person's preferences of a tenant when its marker is missing (memory://
    state after a restart, a flushed Redis): one state read when it is there.

    It runs in the request that notices, before that request is answered: an answer that
    ignored someone's withdrawal would be worse than a slow one.
    """
    if state.get(tenant, MIRRORED) is not None:
        return
    people = mirror_all(store, state, tenant)
    logger.info("mirrored the consent and controls of %d people into the online state", people)
