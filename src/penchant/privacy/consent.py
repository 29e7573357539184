"""Consent and user controls where they are used.

Serving reads a person's preferences (their recorded answers per purpose, and the items,
categories and providers they asked not to see) from one online-state key, `pref:u:<user>`,
which mirrors the store's consent ledger and controls: every change through the API writes
it, and a worker that finds the tenant's `pref:mirrored` marker missing (memory:// state after
a restart, a flushed Redis) writes every person's key again from the store. No key means the
defaults: nothing hidden, and the configured answer for every purpose.

Training and reports read the ledger itself once, at their start (`without_consent`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from penchant.schema.consent import ControlKind
from penchant.store import PersonChoices, Store
from penchant.store.state import StateStore
from penchant.types import Purpose

#: The state key prefix of a person's mirrored preferences.
PREFIX = "pref:u:"
#: The state key that says every person's preferences of a tenant are mirrored.
MIRRORED = "pref:mirrored"


@dataclass(frozen=True)
class Preferences:
    """What serving must honour for one person.

    Attributes:
        consent: the recorded answer per purpose (purposes never answered are absent).
        categories: muted categories.
        providers: muted providers.
        items: items the person is not interested in.
    """

    consent: Mapping[str, bool] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    items: tuple[str, ...] = ()

    def allows(self, purpose: Purpose, default: bool) -> bool:
        """Whether the person's data may be used for a purpose (`default` if never asked)."""
        return self.consent.get(purpose.value, default)

    @property
    def hides(self) -> bool:
        """Whether any control hides something."""
        return bool(self.categories or self.providers or self.items)

    @property
    def empty(self) -> bool:
        """Nothing recorded: the same as having no preferences."""
        return not self.consent and not self.hides

    @classmethod
    def of(cls, choices: PersonChoices) -> Preferences:
        """The preferences of a person's stored answers and controls."""
        by_kind: dict[ControlKind, list[str]] = {kind: [] for kind in ControlKind}
        for control in choices.controls:
            by_kind[control.kind].append(control.value)
        return cls(
            consent={p.value: r.granted for p, r in choices.consent.items()},
            categories=tuple(by_kind[ControlKind.CATEGORY]),
            providers=tuple(by_kind[ControlKind.PROVIDER]),
            items=tuple(by_kind[ControlKind.ITEM]),
        )

    def encode(self) -> bytes:
        """The compact form kept in the online state."""
        out: dict[str, object] = {"c": dict(self.consent)}
        for name, values in (("mc", self.categories), ("mp", self.providers), ("ni", self.items)):
            if values:
                out[name] = values
        return orjson.dumps(out)

    @classmethod
    def decode(cls, raw: bytes) -> Preferences:
        """The inverse of `encode`."""
        data = orjson.loads(raw)
        return cls(
            consent=data.get("c", {}),
            categories=tuple(data.get("mc", ())),
            providers=tuple(data.get("mp", ())),
            items=tuple(data.get("ni", ())),
        )


def read_preferences(state: StateStore, tenant: str, user_id: str) -> Preferences | None:
    """A person's mirrored preferences (one state read), or None for the defaults."""
    raw = state.get(tenant, PREFIX + user_id)
    return None if raw is None else Preferences.decode(raw)


def mirror(store: Store, state: StateStore, tenant: str, user_id: str) -> Preferences:
    """Write a person's preferences from the store into the online state; return them.

    Two changes of one person racing from two requests may mirror in the other order; the
    next change (or the next full mirror) writes the stored state again.
    """
    preferences = Preferences.of(store.consent.choices(tenant, user_id))
    if preferences.empty:
        state.delete(tenant, PREFIX + user_id)
    else:
        state.set(tenant, PREFIX + user_id, preferences.encode())
    return preferences


def mirror_all(store: Store, state: StateStore, tenant: str) -> int:
    """Write every person's preferences of a tenant, then the `MIRRORED` marker; return how
    many people have preferences."""
    everyone = store.consent.everyone(tenant)
    for user_id, choices in everyone.items():
        state.set(tenant, PREFIX + user_id, Preferences.of(choices).encode())
    state.set(tenant, MIRRORED, b"1")
    return len(everyone)


def forget_preferences(state: StateStore, tenant: str, user_id: str) -> int:
    """Delete a person's mirrored preferences (erasure); return how many keys went."""
    return state.delete(tenant, PREFIX + user_id)


@dataclass(frozen=True)
class WithoutConsent:
    """The people whose data may not be used for a purpose, as the ledger said when read.

    `user_id in without` says whether a person is left out: listed in `also`, or (by the
    ledger) denied, or never asked while the default is to deny.

    Attributes:
        purpose: the purpose.
        default_granted: the answer of people who never answered.
        granted: people whose current answer is a grant.
        denied: people whose current answer is a refusal or a withdrawal.
        also: people left out whatever they answered.
    """

    purpose: Purpose
    default_granted: bool
    granted: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    also: frozenset[str] = frozenset()

    def __contains__(self, user_id: object) -> bool:
        if user_id in self.also:
            return True
        return user_id in self.denied if self.default_granted else user_id not in self.granted

    def plus(self, user_ids: Iterable[str]) -> WithoutConsent:
        """The same, leaving these people out too."""
        return WithoutConsent(
            self.purpose, self.default_granted, self.granted, self.denied, self.also | set(user_ids)
        )

    @cached_property
    def _listed_out(self) -> pa.Array:
        out = self.also | (self.denied if self.default_granted else frozenset())
        return pa.array(sorted(out), pa.string())

    @cached_property
    def _listed_in(self) -> pa.Array:
        return pa.array(sorted(self.granted), pa.string())

    def rows(self, users: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
        """Per row of a user id column: whether that person is left out (no user: never)."""
        if isinstance(users, pa.ChunkedArray):
            users = users.combine_chunks()
        if pa.types.is_dictionary(users.type):
            # decide once per distinct id, then spread to the rows
            hit = pc.take(self._out(users.dictionary), users.indices)
        else:
            hit = pc.and_(pc.is_valid(users), self._out(users))
        return pc.fill_null(hit, False)

    def _out(self, values: pa.Array) -> pa.BooleanArray:
        values = pc.cast(values, pa.string())
        out = pc.is_in(values, value_set=self._listed_out)
        if not self.default_granted:
            out = pc.or_(out, pc.invert(pc.is_in(values, value_set=self._listed_in)))
        return out

    def filter(self, tables: Iterable[pa.Table], left_out: set[str]) -> Iterator[pa.Table]:
        """Event tables without the rows of people left out, whose ids go into `left_out`."""
        for table in tables:
            users = table.column("user_id").combine_chunks()
            drop = self.rows(users)
            if pc.any(drop).as_py():
                gone = pc.cast(users.filter(drop), pa.string())
                left_out.update(str(u) for u in pc.unique(gone).to_pylist())
                table = table.filter(pc.invert(drop))
            yield table


def without_consent(
    store: Store, tenant: str, purpose: Purpose, *, default_granted: bool
) -> WithoutConsent:
    """Who may not be used for a purpose, by the ledger as it is now.

    Args:
        store: the store holding the ledger.
        tenant: the tenant.
        purpose: the purpose.
        default_granted: the answer of people who never answered (`privacy.consent_default`).
    """
    answers = store.consent.answers(tenant, purpose)
    return WithoutConsent(
        purpose,
        default_granted,
        granted=frozenset(u for u, ok in answers.items() if ok),
        denied=frozenset(u for u, ok in answers.items() if not ok),
    )
