"""Pseudonymization: the ids of people replaced at every edge by keyed hashes.

With `privacy.pseudonymize` on, a user id that reaches Penchant (an event, a catalog
record, a request, a consent change, an export or an erasure) is replaced, before anything
stores or looks it up, by `p:` and 32 hex characters of an HMAC-SHA-256 keyed with the
privacy secret (which lives outside the database). The database, the online state, the
models and the logs then hold only pseudonyms; whoever holds the secret (the service) still
finds a person by the id their app uses, so export and erasure work by external id.

The store records whether it holds pseudonyms and under which key, and refuses to be opened
the other way: mixing raw ids and pseudonyms, or pseudonyms of two keys, would split people.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from penchant.errors import ConfigError
from penchant.privacy.hashing import Hasher
from penchant.schema import Event, User
from penchant.store.sql.meta import StoreMeta

#: What a pseudonym starts with.
PREFIX = "p:"
#: The store fact that says how user ids are stored.
META_NAME = "user_ids"
#: Its value in a store that keeps ids as given.
AS_GIVEN = "as-given"
#: Hex characters of the HMAC kept (128 bits: no collision among any realistic population).
_HEX = 32
#: Pseudonyms remembered by one process (a bulk import meets each person many times).
_CACHE = 1_000_000


class Pseudonyms:
    """The ids a deployment stores for people's external ids (identity when off)."""

    def __init__(self, hasher: Hasher | None) -> None:
        """Args:
        hasher: the keyed hash of the privacy secret, or None to keep ids as given.
        """
        self._hasher = hasher
        self._cache: dict[tuple[str, str], str] = {}

    @property
    def enabled(self) -> bool:
        """Whether ids are replaced."""
        return self._hasher is not None

    def mark(self) -> str:
        """What the store records for this setting: the key's fingerprint, or `as-given`."""
        if self._hasher is None:
            return AS_GIVEN
        return "hmac-sha256:" + self._hasher.id("", "fingerprint", purpose="pseudonym-key")[:16]

    def user(self, tenant: str, user_id: str) -> str:
        """The stored id of a person's external id."""
        if self._hasher is None:
            return user_id
        key = (tenant, user_id)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE:
                self._cache.clear()
            found = PREFIX + self._hasher.id(tenant, user_id, purpose="pseudonym")[:_HEX]
            self._cache[key] = found
        return found

    def record(self, tenant: str, user: User) -> User:
        """A user record under the id Penchant stores for it."""
        if self._hasher is None:
            return user
        return user.model_copy(update={"id": self.user(tenant, user.id)})

    def events(self, tenant: str, events: Sequence[Event]) -> list[Event]:
        """The events with their user ids replaced."""
        if self._hasher is None:
            return list(events)
        return [
            e
            if e.user_id is None
            else e.model_copy(update={"user_id": self.user(tenant, e.user_id)})
            for e in events
        ]

    def column(self, tenant: str, column: pa.Array | pa.ChunkedArray) -> pa.Array:
        """A column of user ids (strings, nulls kept) replaced, each distinct id hashed once."""
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if self._hasher is None:
            return array
        encoded = pc.dictionary_encode(array)
        keys = encoded.dictionary.to_pylist()
        mapped = pa.array([self.user(tenant, k) for k in keys], pa.string())
        return pc.take(mapped, encoded.indices)


def check_store(pseudonyms: Pseudonyms, meta: StoreMeta) -> None:
    """Refuse a store whose ids were stored the other way, or under another key.

    A store that holds no person yet takes this setting; one that already holds people but
    never recorded it kept their ids as given.

    Raises:
        ConfigError: the setting does not match the store.
    """
    wanted = pseudonyms.mark()
    if meta.get(META_NAME) == wanted:
        return
    stored = meta.settle(META_NAME, wanted, before=AS_GIVEN)
    if stored == wanted:
        return
    if stored == AS_GIVEN:
        message = (
            "this store already holds user ids as given; pseudonymization can only be "
            "turned on for a new store"
        )
    elif wanted == AS_GIVEN:
        message = "this store holds pseudonymized user ids: set privacy.pseudonymize = true"
    else:
        message = (
            "this store's pseudonyms were made with another privacy secret: restore the "
            "secret file it was made with"
        )
    raise ConfigError(message, field="privacy.pseudonymize")
