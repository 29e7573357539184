"""The answers of the HTTP API, as frozen pydantic models owned by the client."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Answers ignore fields they do not know, so that a newer server does not break an older client.
_ANSWER = ConfigDict(frozen=True, extra="ignore")


class RowError(BaseModel):
    """Why one row of a batch was rejected.

    Attributes:
        index: the position of the row in the batch, when it is known.
        field: the offending field, e.g. `events[3].type`.
        message: what is wrong with it.
    """

    model_config = _ANSWER

    index: int | None = None
    field: str
    message: str


class Health(BaseModel):
    """Liveness of the service: `status` is "ok" while it runs."""

    model_config = _ANSWER

    status: str
    version: str


class EventsResult(BaseModel):
    """What a batch of events did; the server answers only once stored events are durable.

    Attributes:
        stored: events newly stored.
        duplicates: event ids that were already stored, and were not stored again.
        rejected: invalid events left out (only with `partial=True`).
    """

    model_config = _ANSWER

    stored: int
    duplicates: tuple[str, ...] = ()
    rejected: tuple[RowError, ...] = ()


class UpsertResult(BaseModel):
    """What a batch upsert of items or users did.

    Attributes:
        upserted: records inserted or replaced.
        rejected: invalid records left out (only with `partial=True`).
    """

    model_config = _ANSWER

    upserted: int
    rejected: tuple[RowError, ...] = ()


class RecommendedItem(BaseModel):
    """One recommended item, with its score and, when the pipeline gives one, a reason."""

    model_config = _ANSWER

    item_id: str
    score: float
    reason: str | None = None


class Recommendations(BaseModel):
    """A ranked list of items, best first.

    Attributes:
        request_id: the id of this list; send it back in the `context.request_id` of the
            outcome events (clicks, purchases) it led to.
        items: the recommended items, best first.
        model_version: the model that scored them, if a trained model did.
        pipeline: the ranking pipeline that produced the list.
    """

    model_config = _ANSWER

    request_id: str
    items: tuple[RecommendedItem, ...] = Field(default=())
    model_version: str | None = None
    pipeline: str

    @property
    def item_ids(self) -> list[str]:
        """The ids of the recommended items, best first."""
        return [item.item_id for item in self.items]


class Decision(BaseModel):
    """The variant of a slot chosen for one request.

    Attributes:
        decision_id: send it back in the `context.decision_id` of the outcome events (a
            click, a conversion) so that the slot's policy learns from them.
        slot: the slot.
        variant: the chosen variant: its id, text, template, image, layout and metadata.
        propensity: the probability the policy had of choosing it.
        policy: the slot's policy.
    """

    model_config = _ANSWER

    decision_id: str
    slot: str
    variant: dict[str, object]
    propensity: float
    policy: str

    @property
    def variant_id(self) -> str:
        """The chosen variant's id."""
        return str(self.variant["id"])
