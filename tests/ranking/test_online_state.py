"""Online activity: what events put in a person's and a session's lists, and erasure."""

from __future__ import annotations

from penchant.ranking import OnlineState
from penchant.schema import Event
from penchant.store.state import MemoryState


def test_events_fill_recent_purchased_and_dismissed_lists_newest_first() -> None:
    online = OnlineState(MemoryState(), "shop", keep=3)
    changed = online.record(
        [
            Event(user_id="u", item_id="a", type="view"),
            Event(user_id="u", item_id="b", type="purchase"),
            Event(user_id="u", item_id="c", type="dismiss"),
            Event(user_id="u", item_id="d", type="impression"),  # shown, not taken
            Event(user_id="u", type="view"),  # no item
            Event(user_id="u", session_id="s", item_id="e", type="click"),
            Event(user_id="u", item_id="f", type="click"),
        ]
    )
    assert changed == 5
    user = online.user("u")
    assert user.recent == ["f", "e", "b"]  # bounded to `keep`
    assert user.purchased == ["b"] and user.dismissed == ["c"]
    assert online.session("s").recent == ["e"]


def test_forget_user_erases_only_that_persons_lists() -> None:
    online = OnlineState(MemoryState(), "shop")
    online.record(
        [
            Event(user_id="u1", session_id="s", item_id="a", type="view"),
            Event(user_id="u10", item_id="b", type="view"),
        ]
    )
    assert online.forget_user("u1") == 1
    assert online.user("u1").recent == []
    assert online.user("u10").recent == ["b"]
    assert online.session("s").recent == ["a"]  # anonymous: not the person's key
