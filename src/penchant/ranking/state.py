"""What a person did since the models were trained: recent, purchased and dismissed items."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from penchant.schema import Event
from penchant.store.state import StateStore

#: Event types that mean the person took the item (it is "seen" and steers their list).
CONSUMED = frozenset(
    {"view", "click", "like", "rating", "add_to_cart", "purchase", "share", "dwell", "conversion"}
)
#: Event types that mean "not this": the item is never shown to them again.
REJECTED = frozenset({"dismiss", "dislike"})
#: What a training run records per person for serving to leave out (`exclusions.npz`).
EXCLUSION_TYPES: dict[str, tuple[str, ...]] = {
    "purchased": ("purchase",),
    "dismissed": tuple(sorted(REJECTED)),
}


@dataclass(frozen=True)
class Activity:
    """A person's or a session's online activity, newest first, as item ids."""

    recent: list[str]
    purchased: list[str]
    dismissed: list[str]


class OnlineState:
    """Per-user and per-session activity in the online state store (memory or Redis).

    Keys are `act:u:<user>:<kind>` and `act:s:<session>:<kind>`; each is a bounded list.
    Session lists expire `session_ttl_s` after their last event; a user's lists are kept
    until erasure (`forget_user`).
    """

    def __init__(
        self, state: StateStore, tenant: str, *, keep: int = 50, session_ttl_s: float = 86_400
    ) -> None:
        self.state = state
        self.tenant = tenant
        self.keep = keep
        self.session_ttl_s = session_ttl_s

    def record(self, events: Iterable[Event]) -> int:
        """Fold accepted events into the online state; return how many changed it."""
        changed = 0
        for event in events:
            if event.item_id is None:
                continue
            kinds = []
            if event.type in CONSUMED:
                kinds.append("recent")
            if event.type == "purchase":
                kinds.append("purchased")
            if event.type in REJECTED:
                kinds.append("dismissed")
            for kind in kinds:
                if event.user_id is not None:
                    self.state.push_recent(
                        self.tenant, f"act:u:{event.user_id}:{kind}", event.item_id, self.keep
                    )
                if event.session_id is not None:
                    self.state.push_recent(
                        self.tenant,
                        f"act:s:{event.session_id}:{kind}",
                        event.item_id,
                        self.keep,
                        ttl_s=self.session_ttl_s,
                    )
            changed += bool(kinds)
        return changed

    def user(self, user_id: str) -> Activity:
        """A known person's activity."""
        return self._read(f"act:u:{user_id}")

    def session(self, session_id: str) -> Activity:
        """An anonymous session's activity."""
        return self._read(f"act:s:{session_id}")

    def _read(self, prefix: str) -> Activity:
        return Activity(
            recent=self.state.recent(self.tenant, f"{prefix}:recent", self.keep),
            purchased=self.state.recent(self.tenant, f"{prefix}:purchased", self.keep),
            dismissed=self.state.recent(self.tenant, f"{prefix}:dismissed", self.keep),
        )

    def forget_user(self, user_id: str) -> int:
        """Erase a person's online activity; return how many keys went."""
        return self.state.delete_prefix(self.tenant, f"act:u:{user_id}:")
