"""Slots as the service uses them: checked definitions, and a per-worker cache of them.

A slot's definition lives in the content store; deciding reads it from a cache that each
worker refreshes every `refresh_s` seconds (and at once for changes made through that
worker), so a decision costs no database query.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from penchant.bandits import Policy, make_policy
from penchant.errors import InvalidInput, NotFound
from penchant.schema.common import utcnow
from penchant.schema.content import Slot, Variant, VariantStatus
from penchant.store.sql.content import SqlContentStore

#: Policies whose statistics count successes, so a decision's reward must stay in [0, 1].
BERNOULLI = frozenset({"thompson"})


def check_slot(slot: Slot) -> Policy:
    """The slot's policy, built from its config; raises InvalidInput if it cannot serve.

    Raises:
        InvalidInput: an unknown policy or hyperparameter (field `policy...`), or a reward
            cap above 1 for a policy that learns from successes.
    """
    policy = make_policy(slot.policy)
    if str(slot.policy.get("name")) in BERNOULLI and slot.reward_cap > 1:
        raise InvalidInput(
            "reward_cap must be at most 1 for the thompson policy (it counts successes)",
            field="reward_cap",
        )
    return policy


@dataclass(frozen=True)
class LiveSlot:
    """A slot ready to decide: its definition, approved variants and policy, and the scope of
    its statistics (an experiment's arm, `experiment/arm`; empty for the slot's own)."""

    slot: Slot
    variants: tuple[Variant, ...]
    policy: Policy
    loaded_at: float
    scope: str = ""


class Slots:
    """Slot definitions of every tenant: writes go to the store, reads come from a cache."""

    def __init__(self, store: SqlContentStore, *, refresh_s: float = 5.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._cache: dict[tuple[str, str], LiveSlot | None] = {}
        self._lock = threading.Lock()

    def live(self, tenant: str, name: str) -> LiveSlot:
        """A slot with its approved variants, at most `refresh_s` old.

        Raises:
            NotFound: no such slot.
        """
        key = (tenant, name)
        cached = self._cache.get(key)
        if cached is None or time.monotonic() - cached.loaded_at > self.refresh_s:
            cached = self._load(tenant, name)
        if cached is None:
            raise NotFound(f"no slot {name!r}", field="slot")
        return cached

    def _load(self, tenant: str, name: str) -> LiveSlot | None:
        slot = self.store.get_slot(tenant, name)
        live = None
        if slot is not None:
            approved = tuple(self.store.list_variants(tenant, name, "approved"))
            live = LiveSlot(slot, approved, check_slot(slot), time.monotonic())
        with self._lock:
            self._cache[(tenant, name)] = live
        return live

    def put(self, tenant: str, slot: Slot) -> Slot:
        """Create or replace a slot after checking its policy."""
        check_slot(slot)
        existing = self.store.get_slot(tenant, slot.id)
        if slot.created_at is None:
            created = existing.created_at if existing else None
            slot = slot.model_copy(update={"created_at": created or utcnow()})
        self.store.put_slot(tenant, slot)
        self._load(tenant, slot.id)
        return slot

    def put_variant(self, tenant: str, slot: str, variant: Variant) -> Variant:
        """Add or replace a variant of an existing slot.

        Raises:
            NotFound: no such slot.
        """
        if self.store.get_slot(tenant, slot) is None:
            raise NotFound(f"no slot {slot!r}", field="slot")
        if variant.created_at is None:
            variant = variant.model_copy(update={"created_at": utcnow()})
        self.store.put_variant(tenant, slot, variant)
        self._load(tenant, slot)
        return variant

    def set_status(self, tenant: str, slot: str, variant_id: str, status: VariantStatus) -> None:
        """Approve, retire or send back a variant.

        Raises:
            NotFound: no such variant.
        """
        if not self.store.set_status(tenant, slot, variant_id, status):
            raise NotFound(f"slot {slot!r} has no variant {variant_id!r}", field="variant")
        self._load(tenant, slot)

    def delete(self, tenant: str, name: str) -> None:
        """Delete a slot and its variants (their learned statistics expire unused).

        Raises:
            NotFound: no such slot.
        """
        if not self.store.delete_slot(tenant, name):
            raise NotFound(f"no slot {name!r}", field="slot")
        with self._lock:
            self._cache.pop((tenant, name), None)
