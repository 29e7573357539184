"""POST /v1/events: validate a batch and append it to the tenant's event log."""

from __future__ import annotations

from fastapi import APIRouter, Request

from penchant.content.decisions import Decider
from penchant.ingest.validate import InvalidBatch, RowError, parse_event_batch
from penchant.service.deps import (
    BodyDep,
    EventsWriter,
    OnlineDep,
    PartialQuery,
    PseudonymsDep,
    SettingsDep,
    StoreDep,
    VocabularyDep,
    own_session_only,
)
from penchant.service.schemas import ERROR_RESPONSES, EventsIn, EventsOut, RowErrorOut, json_body
from penchant.store import Ack

router = APIRouter(prefix="/v1/events", tags=["events"], responses=ERROR_RESPONSES)


@router.post("", response_model=EventsOut, openapi_extra=json_body(EventsIn))
def post_events(
    key: EventsWriter,
    store: StoreDep,
    settings: SettingsDep,
    vocabulary: VocabularyDep,
    body: BodyDep,
    online: OnlineDep,
    pseudonyms: PseudonymsDep,
    request: Request,
    partial: PartialQuery = False,
) -> EventsOut:
    """Store a batch of events, idempotently on `event_id`.

    The answer comes only after the events are durably stored; the next recommendation for
    the user or session already reflects them. With `partial=false` (the default) one
    invalid event rejects the whole batch with 422 and nothing is stored. Events of a person
    who was erased are never stored (that would re-create them) and are listed as rejected.
    """
    batch = parse_event_batch(
        body, vocabulary, max_batch=settings.service.max_batch, partial=partial
    )
    if batch.errors and not partial:
        raise InvalidBatch(batch.errors)
    for event in batch.events:
        own_session_only(request, key, event.user_id, event.session_id)
    valid = pseudonyms.events(key.tenant, batch.events)
    ack = store.events.append(key.tenant, valid) if valid else Ack(stored=0)
    if ack.stored:
        repeated, refused = set(ack.duplicates), set(ack.refused)
        stored = [e for i, e in enumerate(valid) if e.event_id not in repeated and i not in refused]
        online.record(key.tenant, stored)
        decider: Decider = request.app.state.decider
        decider.reward(key.tenant, stored)
    errors = batch.errors + _refused(batch.errors, len(batch.events), ack.refused)
    return EventsOut(
        stored=ack.stored, duplicates=list(ack.duplicates), rejected=RowErrorOut.of(errors)
    )


def _refused(errors: list[RowError], n_valid: int, refused: tuple[int, ...]) -> list[RowError]:
    """Row errors for the events the store refused, at their positions in the request."""
    if not refused:
        return []
    invalid = {e.index for e in errors if e.index is not None}
    positions = [i for i in range(n_valid + len(invalid)) if i not in invalid]
    return [
        RowError(
            index=positions[i],
            field=f"events[{positions[i]}].user_id",
            message="this user was erased; their events are no longer accepted",
        )
        for i in refused
    ]
