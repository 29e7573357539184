"""POST /v1/events: validate a batch and append it to the tenant's event log."""

from __future__ import annotations

from fastapi import APIRouter

from penchant.ingest.validate import InvalidBatch, parse_event_batch
from penchant.service.deps import (
    BodyDep,
    EventsWriter,
    OnlineDep,
    PartialQuery,
    SettingsDep,
    StoreDep,
    VocabularyDep,
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
    partial: PartialQuery = False,
) -> EventsOut:
    """Store a batch of events, idempotently on `event_id`.

    The answer comes only after the events are durably stored; the next recommendation for
    the user or session already reflects them. With `partial=false` (the default) one
    invalid event rejects the whole batch with 422 and nothing is stored.
    """
    batch = parse_event_batch(
        body, vocabulary, max_batch=settings.service.max_batch, partial=partial
    )
    if batch.errors and not partial:
        raise InvalidBatch(batch.errors)
    ack = store.events.append(key.tenant, batch.events) if batch.events else Ack(stored=0)
    if ack.stored:
        repeated = set(ack.duplicates)
        online.record(key.tenant, [e for e in batch.events if e.event_id not in repeated])
    return EventsOut(
        stored=ack.stored, duplicates=list(ack.duplicates), rejected=RowErrorOut.of(batch.errors)
    )
