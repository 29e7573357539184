"""POST /v1/decisions: the variant of a slot that this person or session should see.

A hot route (`penchant.service.hot`): it checks its key itself and answers with a
`Response` built from plain values, like POST /v1/recommendations.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from penchant.content.decisions import Decider, DecisionRequest
from penchant.errors import InvalidInput
from penchant.privacy.pseudonyms import Pseudonyms
from penchant.service.deps import BEARER, authorize, own_session_only
from penchant.service.experiments import LiveExperiments
from penchant.service.schemas import ERROR_RESPONSES, NOT_FOUND, json_body, json_object
from penchant.types import Scope

router = APIRouter(tags=["decisions"], responses=ERROR_RESPONSES)

#: The routes `penchant.service.hot.HotRoutes` answers ahead of FastAPI's router.
HOT = (("POST", "/v1/decisions"),)


class DecisionOut(BaseModel):
    """The chosen variant. Send `decision_id` back in the context of outcome events (a
    click, a conversion) so that the slot's policy learns from them."""

    decision_id: str
    slot: str
    variant: dict[str, object]
    propensity: float
    policy: str


@router.post(
    "/v1/decisions",
    response_model=DecisionOut,
    responses=NOT_FOUND,
    openapi_extra=json_body(DecisionRequest) | BEARER,
)
async def post_decision(request: Request) -> Response:
    """Choose a variant of a slot for a person or session in this context.

    Only approved variants whose eligibility rules admit the request are candidates; 404
    when there is none. The answer's `propensity` is the probability the policy had of
    choosing this variant (logged with the decision for off-policy evaluation).
    """
    key = await authorize(request, Scope.RECS_READ)
    asked = _parse(await request.body())
    own_session_only(request, key, asked.user_id, asked.session_id)
    state = request.app.state
    if asked.user_id is not None:
        pseudonyms: Pseudonyms = state.pseudonyms
        stored = pseudonyms.user(key.tenant, asked.user_id)
        if stored != asked.user_id:
            asked = asked.model_copy(update={"user_id": stored})
    decider: Decider = state.decider
    # the person's consent is read with the slot's statistics: without it, nothing about
    # the person (their segment) steers the choice
    granted = state.settings.privacy.consent_default == "granted"
    # an experiment on the slot: the unit's arm chooses with its own policy
    experiments: LiveExperiments = state.experiments
    routed = experiments.route(key.tenant, f"slot:{asked.slot}", asked.user_id, asked.session_id)
    decision = decider.decide(
        key.tenant,
        asked,
        consent_default=granted,
        policy=routed.policy if routed is not None else None,
        arm=routed.scope if routed is not None else "",
        attributes=routed.attributes if routed is not None else None,
    )
    content = {
        "decision_id": decision.decision_id,
        "slot": decision.slot,
        "variant": decision.variant,
        "propensity": decision.propensity,
        "policy": decision.policy,
    }
    return Response(orjson.dumps(content), media_type="application/json")


def _parse(body: bytes) -> DecisionRequest:
    try:
        return DecisionRequest.model_validate(json_object(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from exc
