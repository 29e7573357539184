"""/v1/recommendations, /v1/items/{id}/similar and /v1/sessions/{id}/recommendations.

The handlers are coroutines: ranking is CPU work that a thread would not run in parallel
(the GIL), so they run on the event loop and spare a thread hand-off per request. They take
the request itself and check its key with `authorize`, rather than through dependencies:
FastAPI's dependency resolution cost a third as much as ranking does.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError

from penchant.errors import InvalidInput
from penchant.experiments.interleaving import team_draft
from penchant.privacy.pseudonyms import Pseudonyms
from penchant.ranking import Engine, Ranked, RankingRequest
from penchant.ranking.catalog import micros
from penchant.ranking.state import Activity
from penchant.service.deps import BEARER, authorize, own_session_only
from penchant.service.experiments import LiveExperiments
from penchant.service.impressions import Impressions, ServedList
from penchant.service.preferences import personal_request
from penchant.service.schemas import (
    ERROR_RESPONSES,
    NOT_FOUND,
    RecommendationsOut,
    json_body,
    json_object,
)
from penchant.types import Scope

router = APIRouter(tags=["recommendations"], responses=ERROR_RESPONSES)

K = Annotated[int, Query(ge=1, description="how many items")]
Surface = Annotated[str | None, Query(description="the surface (pipeline) to rank for")]
ContextJson = Annotated[
    str | None, Query(description="the request context as JSON (device, locale, page_item...)")
]
PathId = Annotated[str, Path(alias="id", min_length=1, max_length=256)]
#: The routes `penchant.service.hot.HotRoutes` answers ahead of FastAPI's router.
HOT = (("POST", "/v1/recommendations"),)


@router.get("/v1/recommendations", response_model=RecommendationsOut, openapi_extra=BEARER)
async def get_recommendations(
    request: Request,
    user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    session_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    k: K = 10,
    surface: Surface = None,
    page_item: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    context: ContextJson = None,
    profiling: Annotated[
        bool, Query(description="false: rank without the person's own data")
    ] = True,
    rerank: Annotated[
        str | None,
        Query(
            description='per re-ranking stage, this list\'s strength, as JSON: {"calibration": 0.5}'
        ),
    ] = None,
) -> Response:
    """Recommendations for a known user (`user_id`) or an anonymous session (`session_id`)."""
    key = await authorize(request, Scope.RECS_READ)
    fields: dict[str, Any] = {"user_id": user_id, "session_id": session_id, "k": k}
    fields["surface"], fields["profiling"] = surface, profiling
    if rerank is not None:
        fields["rerank"] = json_object(rerank, "rerank")
    fields["context"] = {**_context(context), **({"page_item": page_item} if page_item else {})}
    own_session_only(request, key, user_id, session_id)
    return _answer(request, key.tenant, _request(fields))


@router.post(
    "/v1/recommendations",
    response_model=RecommendationsOut,
    openapi_extra=json_body(RankingRequest) | BEARER,
)
async def post_recommendations(request: Request) -> Response:
    """Recommendations with a context, filters, business rules and exclusions."""
    key = await authorize(request, Scope.RECS_READ)
    ranking = _request(json_object(await request.body()))
    own_session_only(request, key, ranking.user_id, ranking.session_id)
    return _answer(request, key.tenant, ranking)


@router.get(
    "/v1/sessions/{id}/recommendations",
    response_model=RecommendationsOut,
    responses=NOT_FOUND,
    openapi_extra=BEARER,
)
async def get_session_recommendations(
    request: Request,
    session_id: PathId,
    k: K = 10,
    surface: Surface = None,
    context: ContextJson = None,
) -> Response:
    """Recommendations for an anonymous visitor, steered by the session's events so far."""
    key = await authorize(request, Scope.RECS_READ)
    fields = {"session_id": session_id, "k": k, "surface": surface, "context": _context(context)}
    own_session_only(request, key, None, session_id)
    return _answer(request, key.tenant, _request(fields))


@router.get(
    "/v1/items/{id}/similar",
    response_model=RecommendationsOut,
    responses=NOT_FOUND,
    openapi_extra=BEARER,
)
async def get_similar_items(
    request: Request, item_id: PathId, k: K = 10, surface: Surface = None
) -> Response:
    """Items like this one (the surface's filters and rules apply)."""
    key = await authorize(request, Scope.RECS_READ)
    _request({"k": k, "surface": surface})  # a 422 for what the engine's request would refuse
    engine = request.app.state.serving.of(key.tenant).engine()
    return _out(engine.similar(item_id, k, surface), uuid.uuid4().hex)


def _request(fields: dict[str, Any]) -> RankingRequest:
    try:
        return RankingRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from exc


def _context(text: str | None) -> dict[str, Any]:
    return {} if text is None else json_object(text, "context")


def _answer(http: Request, tenant: str, request: RankingRequest) -> Response:
    serving = http.app.state.serving
    engine: Engine = serving.of(tenant).engine()
    online = http.app.state.online
    state = online.of(tenant)
    pseudonyms: Pseudonyms = http.app.state.pseudonyms
    if pseudonyms.enabled and request.user_id is not None:
        request = request.model_copy(update={"user_id": pseudonyms.user(tenant, request.user_id)})
    consent_default = http.app.state.settings.privacy.consent_default == "granted"
    request = personal_request(online.state, tenant, request, default_granted=consent_default)
    # An erased or reset person: no worker may rank from their trained rows (still in its
    # memory) until the retraining without them is served; what they did since may count.
    guarded = (
        request.user_id is not None and request.profiling and online.erased(tenant, request.user_id)
    )
    if guarded:
        request = request.model_copy(update={"profiling": False})
    personal = request.user_id is not None and (request.profiling or guarded)
    user = state.user(request.user_id) if personal else None
    session = state.session(request.session_id) if request.session_id is not None else None
    experiments: LiveExperiments = http.app.state.experiments
    asked = request.surface or engine.default_surface
    routed = experiments.route(tenant, asked, request.user_id, request.session_id)
    if routed is not None and routed.surface != asked:
        request = request.model_copy(update={"surface": routed.surface})
    request_id = uuid.uuid4().hex
    teams: list[str] | None = None
    if routed is not None and routed.interleave:
        ranked, teams = _interleaved(engine, request, user, session, routed.interleave, request_id)
    else:
        ranked = engine.recommend(request, user, session)
    impressions: Impressions | None = serving.impressions
    if impressions is not None and ranked.item_ids:
        served = ServedList(
            request_id=request_id,
            user_id=request.user_id,
            session_id=request.session_id,
            item_ids=ranked.item_ids,
            surface=ranked.pipeline,
            device=request.context.device,
            locale=request.context.locale,
            ts=micros(request.now()),
            attributes=routed.attributes if routed is not None else None,
            teams=teams,
        )
        impressions.log(tenant, served)
    return _out(ranked, request_id)


def _interleaved(
    engine: Engine,
    request: RankingRequest,
    user: Activity | None,
    session: Activity | None,
    arms: tuple[tuple[str, str], ...],
    request_id: str,
) -> tuple[Ranked, list[str]]:
    """Both arms' lists, team-drafted into one (seeded by the request id), and the arm whose
    team placed each item. Each item keeps its score and reason from its team's list."""
    (name_a, surface_a), (name_b, surface_b) = arms
    a = engine.recommend(request.model_copy(update={"surface": surface_a}), user, session)
    b = engine.recommend(request.model_copy(update={"surface": surface_b}), user, session)
    drafted = team_draft(
        a.item_ids, b.item_ids, request.k, np.random.default_rng(int(request_id, 16))
    )
    found = [
        {
            i: (s, r, src)
            for i, s, r, src in zip(x.item_ids, x.scores, x.reasons, x.sources, strict=True)
        }
        for x in (a, b)
    ]
    picked = [found[t][item] for item, t in zip(drafted.items, drafted.teams, strict=True)]
    ranked = Ranked(
        item_ids=list(drafted.items),
        scores=[p[0] for p in picked],
        reasons=[p[1] for p in picked],
        sources=[p[2] for p in picked],
        pipeline=f"interleaved:{a.pipeline},{b.pipeline}",
        version=a.version,
    )
    return ranked, [(name_a, name_b)[t] for t in drafted.teams]


def _out(ranked: Ranked, request_id: str) -> Response:
    """The answer, serialized directly: this route is the hot path, and its content is
    built here from plain values (`RecommendationsOut` documents it)."""
    content = {
        "request_id": request_id,
        "items": [
            {"item_id": i, "score": s, "reason": r}
            for i, s, r in zip(ranked.item_ids, ranked.scores, ranked.reasons, strict=True)
        ],
        "model_version": ranked.version,
        "pipeline": ranked.pipeline,
    }
    return Response(orjson.dumps(content), media_type="application/json")
