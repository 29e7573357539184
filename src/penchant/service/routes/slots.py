"""/v1/slots: define slots and their variants, approve or retire variants, propose copy."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from penchant.content.proposals import propose_variants
from penchant.content.slots import Slots
from penchant.errors import NotFound
from penchant.ingest.validate import parse_record
from penchant.jobs.content import generation_config
from penchant.schema.content import Slot, Variant
from penchant.service.deps import BodyDep, CatalogReader, CatalogWriter, SettingsDep
from penchant.service.schemas import ERROR_RESPONSES, NOT_FOUND, json_body

router = APIRouter(prefix="/v1/slots", tags=["slots"], responses=ERROR_RESPONSES)

SlotId = Annotated[str, Path(alias="id", min_length=1, max_length=256)]
VariantId = Annotated[str, Path(alias="variant_id", min_length=1, max_length=256)]


class SlotOut(BaseModel):
    """A slot with every variant, whatever its status."""

    slot: Slot
    variants: list[Variant]


class SlotsOut(BaseModel):
    """Every slot of the tenant."""

    slots: list[Slot]


class ProposalIn(BaseModel):
    """What the copy should say; proposals are stored as pending variants."""

    brief: str = Field(min_length=1, max_length=4_000)
    n: int = Field(default=5, ge=1, le=20)


class ProposalsOut(BaseModel):
    """The new pending variants."""

    variants: list[Variant]


def _slots(request: Request) -> Slots:
    slots: Slots = request.app.state.slots
    return slots


@router.get("", response_model=SlotsOut)
def list_slots(key: CatalogReader, request: Request) -> SlotsOut:
    """Every slot of the tenant, by id."""
    return SlotsOut(slots=_slots(request).store.list_slots(key.tenant))


@router.put("/{id}", response_model=Slot, openapi_extra=json_body(Slot, ("id",)))
def put_slot(key: CatalogWriter, request: Request, slot_id: SlotId, body: BodyDep) -> Slot:
    """Create or replace a slot: its policy, context features and reward.

    Its variants stay. Changing the policy or the features starts its learning afresh from
    the decisions logged under the same features.
    """
    return _slots(request).put(key.tenant, parse_record(body, Slot, slot_id))


@router.get("/{id}", response_model=SlotOut, responses=NOT_FOUND)
def get_slot(key: CatalogReader, request: Request, slot_id: SlotId) -> SlotOut:
    """A slot and all its variants (pending, approved and retired)."""
    slots = _slots(request)
    slot = slots.store.get_slot(key.tenant, slot_id)
    if slot is None:
        raise NotFound(f"no slot {slot_id!r}", field="id")
    return SlotOut(slot=slot, variants=slots.store.list_variants(key.tenant, slot_id))


@router.delete("/{id}", status_code=204, responses=NOT_FOUND)
def delete_slot(key: CatalogWriter, request: Request, slot_id: SlotId) -> Response:
    """Delete a slot and its variants."""
    _slots(request).delete(key.tenant, slot_id)
    return Response(status_code=204)


@router.put(
    "/{id}/variants/{variant_id}",
    response_model=Variant,
    responses=NOT_FOUND,
    openapi_extra=json_body(Variant, ("id",)),
)
def put_variant(
    key: CatalogWriter, request: Request, slot_id: SlotId, variant_id: VariantId, body: BodyDep
) -> Variant:
    """Add or replace a variant (approved unless the body says `pending`)."""
    variant = parse_record(body, Variant, variant_id)
    return _slots(request).put_variant(key.tenant, slot_id, variant)


@router.post("/{id}/variants/{variant_id}/{action}", status_code=204, responses=NOT_FOUND)
def set_variant_status(
    key: CatalogWriter,
    request: Request,
    slot_id: SlotId,
    variant_id: VariantId,
    action: Literal["approve", "retire", "unapprove"],
) -> Response:
    """Approve a variant (it can be served from now on), retire it, or send it back to
    pending."""
    status = {"approve": "approved", "retire": "retired", "unapprove": "pending"}[action]
    _slots(request).set_status(key.tenant, slot_id, variant_id, status)  # type: ignore[arg-type]
    return Response(status_code=204)


@router.post("/{id}/proposals", response_model=ProposalsOut, responses=NOT_FOUND)
def propose(
    key: CatalogWriter, request: Request, settings: SettingsDep, slot_id: SlotId, body: ProposalIn
) -> ProposalsOut:
    """Ask the configured generation server for new copy; it is stored as pending variants,
    never served until approved."""
    made = propose_variants(
        _slots(request), key.tenant, slot_id, generation_config(settings), body.brief, body.n
    )
    return ProposalsOut(variants=made)
