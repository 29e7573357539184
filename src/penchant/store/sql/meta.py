"""Store-wide facts fixed once data arrives, such as how user ids are pseudonymized."""

from __future__ import annotations

from sqlalchemy import Engine, select

from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.tables import (
    KIND_USER,
    consents,
    dictionary,
    store_meta,
    user_controls,
    users,
)

#: Where a person's id is stored as given: a store with a row in any of them holds people.
_PEOPLE = (
    select(dictionary.c.ix).where(dictionary.c.kind == KIND_USER).limit(1),
    select(users.c.tenant_ix).limit(1),
    select(consents.c.tenant_ix).limit(1),
    select(user_controls.c.tenant_ix).limit(1),
)


class StoreMeta:
    """Named values recorded once per store (not per tenant)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, name: str) -> str | None:
        """The recorded value of `name`, or None."""
        with read_tx(self._engine) as conn:
            value = conn.execute(
                select(store_meta.c.value).where(store_meta.c.name == name)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def settle(self, name: str, value: str, *, before: str) -> str:
        """The recorded value of `name`, recording `value` first when there is none, or
        when the store holds no person yet.

        Args:
            name: the fact.
            value: what to record in a store that holds no person yet.
            before: what to record in a store that already holds people but never recorded
                the fact (what it was made with before the fact was kept).

        Returns:
            The value now recorded (compare it with `value`).
        """
        with write_tx(self._engine) as conn:
            stored = conn.execute(
                select(store_meta.c.value).where(store_meta.c.name == name)
            ).scalar_one_or_none()
            if stored == value:
                return value
            people = any(conn.execute(query).first() is not None for query in _PEOPLE)
            if stored is not None:
                if people:
                    return str(stored)
                # no person stored yet: the fact may still change
                conn.execute(
                    store_meta.update().where(store_meta.c.name == name).values(value=value)
                )
                return value
            recorded = before if people else value
            conn.execute(store_meta.insert().values(name=name, value=recorded))
            return recorded
