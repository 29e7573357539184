"""Generated copy for a slot, stored as pending variants that a person must approve."""

from __future__ import annotations

import hashlib

from penchant.content.generate import GenerationConfig, propose_copy
from penchant.content.slots import Slots
from penchant.errors import NotFound
from penchant.schema.content import Variant


def propose_variants(
    slots: Slots, tenant: str, slot_id: str, config: GenerationConfig, brief: str, n: int
) -> list[Variant]:
    """Ask a generation server for `n` new texts for a slot and store them as pending.

    The slot's variants (any status) are the examples the server sees and the texts it must
    not repeat. Nothing proposed is served until approved.

    Returns:
        The new pending variants (a text proposed before is not stored twice).

    Raises:
        NotFound: no such slot.
        Unavailable: the server cannot be reached or fails.
        InvalidInput: its answer holds no usable proposal.
    """
    if slots.store.get_slot(tenant, slot_id) is None:
        raise NotFound(f"no slot {slot_id!r}", field="slot")
    existing = slots.store.list_variants(tenant, slot_id)
    examples = [v.text for v in existing if v.text]
    texts = propose_copy(config, slot=slot_id, brief=brief, examples=examples, n=n)
    known = {v.id for v in existing}
    made = []
    for text in texts:
        variant_id = "gen-" + hashlib.blake2b(text.encode(), digest_size=5).hexdigest()
        if variant_id in known:
            continue
        variant = Variant(id=variant_id, text=text, status="pending", source="generated")
        made.append(slots.put_variant(tenant, slot_id, variant))
        known.add(variant_id)
    return made
