"""POST /v1/templates/preview: a personalized template rendered for one person, to look at.

A preview decides nothing for real: the slots' variants are chosen by their policies as a
real render would, but the choices are neither counted nor logged, and the recommendations
it shows are not logged as impressions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from penchant.content import RenderContext, TemplateSpec, compile_template, render
from penchant.content.decisions import Decider, DecisionContext, DecisionRequest
from penchant.errors import InvalidInput
from penchant.privacy.keys import require_scope
from penchant.privacy.pseudonyms import Pseudonyms
from penchant.ranking import RankingRequest
from penchant.schema.common import Id
from penchant.service.deps import get_key
from penchant.service.preferences import personal_request
from penchant.service.schemas import ERROR_RESPONSES
from penchant.store import ApiKeyRecord, Store
from penchant.types import Scope

router = APIRouter(prefix="/v1/templates", tags=["templates"], responses=ERROR_RESPONSES)


class TemplateIn(BaseModel):
    """A template's parts: HTML (autoescaped), plain text (derived from the HTML when
    absent) and a subject line."""

    html: str = Field(max_length=65_536)
    text: str | None = Field(default=None, max_length=65_536)
    subject: str | None = Field(default=None, max_length=2_000)


class PreviewIn(BaseModel):
    """Whom to render the template for, and in what context."""

    template: TemplateIn
    user_id: Id | None = None
    session_id: Id | None = None
    profile: dict[str, Any] = Field(
        default_factory=dict, description="profile fields beside the user's stored attributes"
    )
    context: DecisionContext = Field(default_factory=DecisionContext)


class PreviewOut(BaseModel):
    """The rendered parts, and the variant each slot the template used would show."""

    html: str
    text: str
    subject: str | None
    slots: dict[str, str]


async def _reader_of_both(key: Annotated[ApiKeyRecord, Depends(get_key)]) -> ApiKeyRecord:
    """The key, once it holds both scopes a preview needs (checked before the body)."""
    require_scope(key, Scope.CATALOG_READ)
    require_scope(key, Scope.RECS_READ)
    return key


@router.post("/preview", response_model=PreviewOut)
def preview(
    key: Annotated[ApiKeyRecord, Depends(_reader_of_both)], request: Request, body: PreviewIn
) -> PreviewOut:
    """Render a template for a person: `profile` (their stored attributes and the body's
    fields), `recommend(k, surface)` (their recommendations) and `slot(name)` (the variant
    the slot's policy would choose) as the template sees them.

    Needs catalog:read and recs:read (it shows a person's attributes and recommendations).
    """
    if body.user_id is None and body.session_id is None:
        raise InvalidInput("give user_id or session_id", field="user_id")
    state = request.app.state
    pseudonyms: Pseudonyms = state.pseudonyms
    user_id = None if body.user_id is None else pseudonyms.user(key.tenant, body.user_id)
    compiled = compile_template(TemplateSpec("preview", **body.template.model_dump()))
    store: Store = state.store
    user = store.catalog.get_user(key.tenant, user_id) if user_id is not None else None
    profile = {**(user.attributes if user is not None else {}), **body.profile}
    if body.user_id is not None:
        profile.setdefault("id", body.user_id)
    decider: Decider = state.decider

    def recommend(k: int, surface: str | None) -> list[dict[str, Any]]:
        ranking = RankingRequest.model_validate(
            {"user_id": user_id, "session_id": body.session_id, "k": k, "surface": surface}
        )
        granted = state.settings.privacy.consent_default == "granted"
        ranking = personal_request(state.online.state, key.tenant, ranking, default_granted=granted)
        engine = state.serving.of(key.tenant).engine()
        online = state.online.of(key.tenant)
        personal = user_id is not None and ranking.profiling
        person = online.user(user_id) if personal else None
        session = online.session(body.session_id) if body.session_id is not None else None
        ranked = engine.recommend(ranking, person, session)
        return [
            _item(store, key.tenant, i, r)
            for i, r in zip(ranked.item_ids, ranked.reasons, strict=True)
        ]

    def choose(slot: str) -> dict[str, Any]:
        ask = DecisionRequest(
            slot=slot, user_id=user_id, session_id=body.session_id, context=body.context
        )
        return decider.decide(key.tenant, ask, dry_run=True).variant

    rendered = render(compiled, RenderContext(profile, recommend, choose, body.context.time))
    return PreviewOut(
        html=rendered.html, text=rendered.text, subject=rendered.subject, slots=rendered.slots
    )


def _item(store: Store, tenant: str, item_id: str, reason: str | None) -> dict[str, Any]:
    item = store.catalog.get_item(tenant, item_id)
    if item is None:
        return {"id": item_id, "reason": reason}
    return {
        **item.attributes,  # such as url, image, price
        "id": item_id,
        "title": item.title,
        "categories": item.categories,
        "reason": reason,
    }
