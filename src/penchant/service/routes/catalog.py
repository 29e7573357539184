"""/v1/items and /v1/users: put, get, delete and batch-upsert catalog records of a tenant."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import APIRouter, Path, Response

from penchant.errors import NotFound
from penchant.ingest.validate import InvalidBatch, parse_record, parse_records
from penchant.privacy.pseudonyms import Pseudonyms
from penchant.schema import Item, User
from penchant.service.deps import (
    BodyDep,
    CatalogReader,
    CatalogWriter,
    PartialQuery,
    PseudonymsDep,
    ServingDep,
    SettingsDep,
    StoreDep,
)
from penchant.service.schemas import (
    ERROR_RESPONSES,
    NOT_FOUND,
    ItemsIn,
    RowErrorOut,
    UpsertOut,
    UsersIn,
    json_body,
)
from penchant.service.serving import ServedModels
from penchant.store import Store

R = TypeVar("R", Item, User)
RecordId = Annotated[str, Path(alias="id", min_length=1, max_length=256)]


@dataclass(frozen=True)
class Resource(Generic[R]):
    """How one kind of catalog record is named, validated and stored."""

    name: str
    model: type[R]
    batch_model: type[ItemsIn | UsersIn]
    upsert: Callable[[Store, Pseudonyms, str, Sequence[R]], int]
    get: Callable[[Store, Pseudonyms, str, str], R | None]
    delete: Callable[[Store, str, str], bool] | None  # None: deleting is erasure (privacy)
    served: bool = False  # whether serving must rebuild its catalog after a write


def catalog_router(resource: Resource[R]) -> APIRouter:
    """The router of one kind of catalog record, under /v1/<name>.

    Args:
        resource: the record kind.

    Returns:
        A router with PUT, GET and DELETE by id and a batch POST.
    """
    name, model = resource.name, resource.model
    one = name.removesuffix("s")
    router = APIRouter(prefix=f"/v1/{name}", tags=[name], responses=ERROR_RESPONSES)

    @router.put(
        "/{id}", response_model=model, responses=NOT_FOUND, openapi_extra=json_body(model, ("id",))
    )
    def put_record(
        key: CatalogWriter,
        store: StoreDep,
        serving: ServingDep,
        pseudonyms: PseudonymsDep,
        record_id: RecordId,
        body: BodyDep,
    ) -> R:
        """Insert or replace one record; a body `id`, if given, must equal the path id."""
        record = parse_record(body, model, record_id)
        resource.upsert(store, pseudonyms, key.tenant, [record])
        changed(serving, key.tenant, [record])
        return record

    @router.get("/{id}", response_model=model, responses=NOT_FOUND)
    def get_record(
        key: CatalogReader, store: StoreDep, pseudonyms: PseudonymsDep, record_id: RecordId
    ) -> R:
        """One record of the key's tenant."""
        record = resource.get(store, pseudonyms, key.tenant, record_id)
        if record is None:
            raise NotFound(f"no such {one}", field="id")
        return record

    remove = resource.delete
    if remove is not None:

        @router.delete("/{id}", status_code=204, response_class=Response, responses=NOT_FOUND)
        def delete_record(
            key: CatalogWriter, store: StoreDep, serving: ServingDep, record_id: RecordId
        ) -> None:
            """Delete one catalog record of the key's tenant."""
            if not remove(store, key.tenant, record_id):
                raise NotFound(f"no such {one}", field="id")
            changed(serving, key.tenant)

    @router.post("", response_model=UpsertOut, openapi_extra=json_body(resource.batch_model))
    def upsert_records(
        key: CatalogWriter,
        store: StoreDep,
        serving: ServingDep,
        settings: SettingsDep,
        pseudonyms: PseudonymsDep,
        body: BodyDep,
        partial: PartialQuery = False,
    ) -> UpsertOut:
        """Insert or replace a batch of records; the last record of an id in a batch wins."""
        batch = parse_records(
            body, model, name, max_batch=settings.service.max_batch, partial=partial
        )
        if batch.errors and not partial:
            raise InvalidBatch(batch.errors)
        upserted = (
            resource.upsert(store, pseudonyms, key.tenant, batch.records) if batch.records else 0
        )
        if upserted:
            changed(serving, key.tenant, batch.records)
        return UpsertOut(upserted=upserted, rejected=RowErrorOut.of(batch.errors))

    def changed(serving: ServedModels, tenant: str, records: Sequence[object] = ()) -> None:
        if resource.served:
            items = [r for r in records if isinstance(r, Item)]
            serving.of(tenant).catalog_changed(items)

    return router


def _as_given(user: User | None, given: str) -> User | None:
    """A stored user record under the id the request named (its pseudonym stays inside)."""
    return None if user is None else user.model_copy(update={"id": given})


items = catalog_router(
    Resource(
        name="items",
        model=Item,
        batch_model=ItemsIn,
        upsert=lambda store, _, tenant, records: store.catalog.upsert_items(tenant, records),
        get=lambda store, _, tenant, record_id: store.catalog.get_item(tenant, record_id),
        delete=lambda store, tenant, record_id: store.catalog.delete_item(tenant, record_id),
        served=True,
    )
)

users = catalog_router(
    Resource(
        name="users",
        model=User,
        batch_model=UsersIn,
        upsert=lambda store, pseudonyms, tenant, records: store.catalog.upsert_users(
            tenant, [pseudonyms.record(tenant, r) for r in records]
        ),
        get=lambda store, pseudonyms, tenant, record_id: _as_given(
            store.catalog.get_user(tenant, pseudonyms.user(tenant, record_id)), record_id
        ),
        delete=None,  # DELETE /v1/users/{id} erases the person everywhere (routes.privacy)
    )
)
