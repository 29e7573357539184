"""The simulated world: users, items and a logged event history with a known ground truth."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from penchant.errors import InvalidInput, NotFound
from penchant.ingest import world_text as vocab
from penchant.ingest.world_draw import (
    CENTROID_NORM,
    DAY,
    DEVICE_DECAY,
    DEVICES,
    NEVER,
    PURPOSES,
    SURFACE_BIAS,
    SURFACES,
    EventMix,
    Floats,
    Ints,
    WorldArrays,
    WorldConfig,
    draw_items,
    draw_users,
    sigmoid,
)
from penchant.ingest.world_log import day_events, react, to_table
from penchant.schema import ConsentState, EventContext, Item, User
from penchant.schema.common import from_micros, to_micros
from penchant.store.base import EVENT_TABLE_SCHEMA
from penchant.store.convert import context_json

__all__ = ["EventMix", "World", "WorldConfig"]


class World:
    """A synthetic population whose true preferences are known; build one with `generate`."""

    def __init__(self, config: WorldConfig, arrays: WorldArrays) -> None:
        self.config, self.arrays = config, arrays
        item_ids = [f"i{i:06d}" for i in range(len(arrays.item_factors))]
        self._users = {str(u): i for i, u in enumerate(arrays.user_ids)}
        self._items = {item: i for i, item in enumerate(item_ids)}
        self._user_column, self._item_column = pa.array(list(self._users)), pa.array(item_ids)
        lp = arrays.log_popularity
        self._popularity_z = (lp - lp.mean()) / (lp.std() + 1e-12)
        self._summary: dict[str, object] | None = None

    @classmethod
    def generate(cls, config: WorldConfig) -> World:
        """Draw users, items and their latent factors from `config.seed`.

        Args:
            config: sizes and behaviour knobs.

        Returns:
            The world; `events` draws its history lazily, day by day.
        """
        rng = np.random.default_rng([config.seed, 0])
        words, names, category_words = vocab.vocabulary(config.n_categories)
        centroids = rng.normal(size=(config.n_categories, config.factors))
        centroids *= CENTROID_NORM / np.linalg.norm(centroids, axis=1, keepdims=True)
        share = rng.dirichlet(np.full(config.n_categories, 5.0))
        users = draw_users(rng, config, centroids, share)
        items = draw_items(rng, config, centroids, share, category_words)
        arrays = WorldArrays(
            words=np.array(words), categories=np.array(names), centroids=centroids, **users, **items
        )
        return cls(config, arrays)

    def items(self) -> list[Item]:
        """The catalogue as schema records: title, text, categories, tags, provider, price."""
        a, words = self.arrays, [str(w) for w in self.arrays.words]
        return [
            Item(
                id=item_id,
                title=vocab.render_title(words, a.title[i]),
                text=vocab.render_text(words, a.text[i]),
                categories=[str(a.categories[c]) for c in a.item_categories[i] if c >= 0],
                tags=list(dict.fromkeys(words[t] for t in a.tags[i] if t >= 0)),
                provider=f"p{a.provider[i]:04d}",
                attributes={"price": float(a.price[i])},
                published_at=from_micros(int(a.published[i])),
                expires_at=None if a.expires[i] == NEVER else from_micros(int(a.expires[i])),
            )
            for item_id, i in self._items.items()
        ]

    def users(self) -> list[User]:
        """The known users: age band, country, signup date, and consent per purpose."""
        a, out = self.arrays, []
        for user_id, i in self._users.items():
            at = from_micros(int(a.signup[i]))
            age, country = a.user_profile[i]
            attributes = {
                "age_band": vocab.AGE_BANDS[age],
                "country": vocab.COUNTRIES[country],
                "signup_date": at.date().isoformat(),
            }
            consent = {
                p: ConsentState(granted=bool(a.consent[i, j]), at=at, source="signup")
                for j, p in enumerate(PURPOSES)
            }
            out.append(User(id=user_id, attributes=attributes, consent=consent))
        return out

    def with_user(self, user_id: str, taste: Mapping[str, float], activity: float = 1.0) -> World:
        """A copy of the world with one more user whose taste is planted exactly (no noise).

        Args:
            user_id: the new user's id.
            taste: weight per category name, normalized to sum to one.
            activity: the user's activity level (1 is average).

        Returns:
            A new world; this one is unchanged.

        Raises:
            InvalidInput: the id is taken, a category is unknown, or no weight is positive.
        """
        a, names = self.arrays, [str(n) for n in self.arrays.categories]
        if user_id in self._users or not set(taste) <= set(names) or sum(taste.values()) <= 0:
            raise InvalidInput(f"cannot plant user {user_id!r} with taste {dict(taste)}")
        weights = np.array([max(taste.get(name, 0.0), 0.0) for name in names])
        weights /= weights.sum()
        rows = {
            "user_ids": np.array([user_id]),
            "user_taste": weights[None, :],
            "user_factors": (weights @ a.centroids)[None, :],
            "activity": np.array([activity]),
            "signup": np.array([to_micros(self.config.start) - DAY]),
            "user_profile": np.zeros((1, 2), np.int64),
            "consent": np.ones((1, len(PURPOSES)), bool),
        }
        grown = {k: np.concatenate([getattr(a, k), v]) for k, v in rows.items()}
        config = self.config.model_copy(update={"n_users": len(a.user_ids) + 1})
        return World(config, replace(a, **grown))

    def _index(self, ids: Sequence[str], lookup: dict[str, int], kind: str) -> Ints:
        try:
            return np.array([lookup[i] for i in ids], dtype=np.int64)
        except KeyError as error:
            raise NotFound(f"unknown {kind} {error.args[0]!r} in the simulated world") from error

    def true_affinity(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> Floats:
        """The true affinity (user factors · item factors) of each user for each item.

        Args:
            user_ids: known user ids.
            item_ids: item ids.

        Returns:
            A (len(user_ids), len(item_ids)) matrix; higher means a stronger preference.

        Raises:
            NotFound: an id is not in the world.
        """
        users = self.arrays.user_factors[self._index(user_ids, self._users, "user")]
        items = self.arrays.item_factors[self._index(item_ids, self._items, "item")]
        return np.asarray(users @ items.T, dtype=np.float64)

    def _p_click(self, aff: Floats, items: Ints, pos: Ints, surface: Ints, device: Ints) -> Floats:
        """Examination chance of the position times the chance of a click once examined."""
        mix, bias = self.config.mix, np.take(SURFACE_BIAS, surface)
        logit = mix.click_bias + bias + aff + mix.popularity_weight * self._popularity_z[items]
        return np.asarray((1.0 + pos) ** -np.take(DEVICE_DECAY, device) * sigmoid(logit))

    def click_probability(
        self,
        user_id: str,
        item_ids: Sequence[str],
        positions: Sequence[int] | None = None,
        context: EventContext | None = None,
    ) -> Floats:
        """The true chance that a user clicks each item shown at the given positions.

        It is (1 + position) ** -decay (decay by device) times sigmoid(bias + surface bias +
        affinity + popularity weight · standardized log popularity). `respond` draws clicks
        from exactly this; the logged history adds a per-session drift of taste.

        Args:
            user_id: a known user.
            item_ids: the items shown.
            positions: 0-based positions; by default 0, 1, 2, ... in list order.
            context: surface and device, when known (defaults: home, desktop).

        Returns:
            One probability per item.

        Raises:
            NotFound: an id is not in the world.
        """
        items = self._index(item_ids, self._items, "item")
        pos = np.arange(len(items)) if positions is None else np.asarray(positions, np.int64)
        user = self.arrays.user_factors[self._index([user_id], self._users, "user")[0]]
        surface, device = self._surface_device(context)
        return self._p_click(self.arrays.item_factors[items] @ user, items, pos, surface, device)

    def _surface_device(self, context: EventContext | None) -> tuple[Ints, Ints]:
        surface = context.surface if context and context.surface in SURFACES else "home"
        device = context.device if context and context.device in DEVICES else "desktop"
        return np.array([SURFACES.index(str(surface))]), np.array([DEVICES.index(str(device))])

    def respond(
        self,
        user_id: str,
        shown_item_ids: Sequence[str],
        rng: np.random.Generator,
        context: EventContext | None = None,
        *,
        at: datetime | None = None,
        session_id: str | None = None,
    ) -> pa.Table:
        """Simulate how a user reacts to a list shown to them (position 0 first).

        Args:
            user_id: a known user.
            shown_item_ids: the list, best first.
            rng: the random generator; the same state gives the same reactions.
            context: request_id (generated when missing), surface and device of the list.
            at: when the list was shown; by default the end of the simulated period.
            session_id: the session to record; by default one derived from `rng`.

        Returns:
            The reactions, without impressions, as a table with `EVENT_TABLE_SCHEMA`; each
            carries the list's request_id and the item's position in its context.

        Raises:
            NotFound: an id is not in the world.
        """
        items = self._index(shown_item_ids, self._items, "item")[None, :]
        user = self._index([user_id], self._users, "user")
        token = f"w{self.config.seed}-x{int(rng.integers(2**62)):x}"
        base = context or EventContext()
        base = base.model_copy(update={"request_id": base.request_id or token})
        t0 = to_micros(at) if at else to_micros(self.config.start) + self.config.days * DAY
        vec, valid = self.arrays.user_factors[user], np.ones(items.shape, bool)
        rows = react(self, rng, vec, items, valid, np.array([t0]), *self._surface_device(context))
        contexts = [
            context_json(base.model_copy(update={"position": k})) for k in range(items.size)
        ]
        sessions = pa.array([session_id or token])
        return to_table(
            self, rows, items, user, sessions, pa.array(contexts).take(rows[2]), f"{token}-"
        )

    def events(self, *, batch_size: int = 50_000) -> Iterator[pa.Table]:
        """The logged history in chronological order, in tables of `batch_size` rows.

        Each day is drawn from (seed, day) alone, so memory holds about a day of events.
        Event ids are `w{seed}-{day}-{n}`, sessions `w{seed}-s{day}-{n}` and requests
        `w{seed}-r{day}-{n}`, so the same config always gives the same rows.

        Args:
            batch_size: rows per table (the last one may have fewer).

        Yields:
            Tables with `penchant.store.base.EVENT_TABLE_SCHEMA`.
        """
        start, last = to_micros(self.config.start), self.config.days - 1
        carry, ready = EVENT_TABLE_SCHEMA.empty_table(), EVENT_TABLE_SCHEMA.empty_table()
        for day in range(last + 1):
            table = pa.concat_tables([carry, day_events(self, day)])
            ts = table.column("ts").to_numpy()
            order = np.argsort(ts, kind="stable")  # stable: at equal ts, causes stay first
            table, ts = table.take(order), ts[order]
            cut = len(ts) if day == last else int(np.searchsorted(ts, start + (day + 1) * DAY))
            ready, carry = pa.concat_tables([ready, table.slice(0, cut)]), table.slice(cut)
            while ready.num_rows >= batch_size or (day == last and ready.num_rows):
                yield ready.slice(0, batch_size).combine_chunks()
                ready = ready.slice(batch_size)

    def summary(self) -> dict[str, object]:
        """Counts for printing: users, items, categories, events by type and the time range."""
        if self._summary is None:
            by_type: Counter[str] = Counter()
            first = last = None
            for table in self.events(batch_size=500_000):
                by_type.update(
                    {v["values"]: v["counts"] for v in pc.value_counts(table["type"]).to_pylist()}
                )
                first = table["ts"][0].as_py() if first is None else first
                last = table["ts"][-1].as_py()
            c = self.config
            self._summary = {
                "users": len(self._users),
                "items": len(self._items),
                "categories": c.n_categories,
                "providers": c.n_providers,
                "days": c.days,
                "events": sum(by_type.values()),
                "by_type": dict(sorted(by_type.items())),
                "first_event": None if first is None else from_micros(first).isoformat(),
                "last_event": None if last is None else from_micros(last).isoformat(),
            }
        return self._summary

    def save(self, path: str | Path) -> None:
        """Write `world.npz` (arrays) and `world.json` (config) into a directory; no pickle."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self.arrays, f.name) for f in fields(self.arrays)}
        np.savez_compressed(folder / "world.npz", **arrays)
        meta = {
            "format": 1,
            "class": "penchant.ingest.world.World",
            "config": self.config.model_dump(mode="json"),
        }
        (folder / "world.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> World:
        """Read a world written by `save`.

        Args:
            path: the directory.

        Returns:
            The world, identical in every array and in its config.

        Raises:
            InvalidInput: the directory holds another format.
        """
        folder = Path(path)
        meta = json.loads((folder / "world.json").read_text())
        if meta.get("format") != 1:
            raise InvalidInput(f"unsupported world format {meta.get('format')!r}")
        config = WorldConfig.model_validate(meta["config"])
        with np.load(folder / "world.npz", allow_pickle=False) as data:
            arrays = WorldArrays(**{f.name: data[f.name] for f in fields(WorldArrays)})
        return cls(config, arrays)
