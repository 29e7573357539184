"""The simulated world: users, items and a logged event history with a known ground truth."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from penchant.errors import InvalidInput, NotFound
from penchant.ingest import world_text as vocab
from penchant.schema import ConsentState, EventContext, Item, User
from penchant.schema.common import UtcDatetime, from_micros, to_micros
from penchant.store.base import EVENT_TABLE_SCHEMA
from penchant.store.convert import context_json
from penchant.types import Purpose

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Rows = tuple[Ints, Ints, Ints, Ints, Floats]  # type code, list, position, ts, value

SECOND, DAY, NEVER = 1_000_000, 86_400_000_000, np.iinfo(np.int64).max
#: Event types the world emits, all in `penchant.types.BUILTIN_EVENT_TYPES`.
TYPES = (
    *("impression", "dismiss", "click", "view", "dwell", "skip", "like", "dislike", "share"),
    *("add_to_cart", "purchase", "rating"),
)
CODE = {name: code for code, name in enumerate(TYPES)}
#: Where lists are shown, how often, and how much more readily people click there.
SURFACES, SURFACE_P = ("home", "category", "item_page", "search"), (0.55, 0.2, 0.15, 0.1)
SURFACE_BIAS = (0.0, 0.2, -0.2, 0.4)
#: Devices, how often, and how fast attention decays down a list on each.
DEVICES, DEVICE_P, DEVICE_DECAY = ("mobile", "desktop", "tablet"), (0.6, 0.3, 0.1), (0.9, 0.6, 0.75)
PURPOSES, CONSENT_P = tuple(Purpose), (0.9, 0.8, 0.35)
#: Relative share of sessions starting in each hour of the day (UTC).
DIURNAL = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 7, 8, 7, 6, 6, 7, 8, 9, 10, 10, 9, 6, 4.0])
CENTROID_NORM, NOISE, SESSION_DRIFT, POLICY_AFFINITY = 1.8, 0.5, 0.4, 1.0


class EventMix(BaseModel):
    """How people react to a list: the click model, then funnel rates.

    After a click, satisfaction q = sigmoid(affinity - 1 + noise); like, share and
    add_to_cart happen at twice their rate times q, dislike and dismiss at twice theirs
    times (1 - q), so each rate is the one at an average satisfaction (q = 0.5).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    click_bias: float = -2.0  # logit of a click on an average item, before position
    popularity_weight: float = Field(0.5, ge=0)  # times the standardized log popularity
    dwell_median: float = Field(25.0, gt=0)  # seconds, at average satisfaction
    like: float = Field(0.15, ge=0, le=1)
    dislike: float = Field(0.03, ge=0, le=1)
    share: float = Field(0.03, ge=0, le=1)
    skip: float = Field(0.5, ge=0, le=1)  # of clicks whose dwell is under 30% of the median
    dismiss: float = Field(0.01, ge=0, le=1)  # of shown items not clicked
    add_to_cart: float = Field(0.08, ge=0, le=1)
    purchase: float = Field(0.4, ge=0, le=1)  # of carts
    rating: float = Field(0.05, ge=0, le=1)  # of clicks; three times that after a purchase


class WorldConfig(BaseModel):
    """Size and behaviour of a simulated world; the same config always gives the same world."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_users: int = Field(1_000, ge=1)
    n_items: int = Field(2_000, ge=1)
    n_categories: int = Field(12, ge=1, le=1_000)  # 20 built-in topics, then reused
    n_providers: int = Field(50, ge=1)
    factors: int = Field(24, ge=2)  # latent dimension of tastes and items
    days: int = Field(30, ge=1)
    start: UtcDatetime = datetime(2024, 1, 1, tzinfo=UTC)
    popularity_exponent: float = Field(1.0, ge=0)  # base popularity ~ rank ** -exponent
    sessions_per_day: float = Field(0.4, gt=0)  # mean per user; Poisson times activity
    activity_sigma: float = Field(1.0, ge=0)  # log-normal spread of activity (mean 1)
    lists_per_session: float = Field(2.0, ge=1)  # mean; 1 + Poisson
    list_size: int = Field(10, ge=1, le=200)
    anonymous_share: float = Field(0.1, ge=0, lt=1)  # of sessions, without a user_id
    new_item_share: float = Field(0.4, ge=0, le=1)  # published during the period
    expiring_share: float = Field(0.2, ge=0, le=1)  # expire 3 to 60 days after publishing
    seed: int = Field(0, ge=0)
    mix: EventMix = EventMix()


@dataclass(frozen=True)
class WorldArrays:
    """Everything a world holds, saved as one .npz; times are microseconds since the epoch."""

    words: NDArray[np.str_]
    categories: NDArray[np.str_]
    centroids: Floats
    user_ids: NDArray[np.str_]
    user_taste: Floats
    user_factors: Floats
    activity: Floats
    signup: Ints
    user_profile: Ints  # age band, country
    consent: NDArray[np.bool_]  # one column per `PURPOSES`
    item_categories: Ints  # up to three, -1 padded
    item_factors: Floats
    provider: Ints
    tags: Ints
    title: Ints
    text: Ints
    price: Floats
    published: Ints
    expires: Ints
    log_popularity: Floats


def _sigmoid(x: Floats) -> Floats:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _us(seconds: Floats | float) -> Ints:
    return np.asarray(np.rint(np.asarray(seconds) * SECOND), dtype=np.int64)


def _tastes(rng: np.random.Generator, n: int, share: Floats) -> Floats:
    """Category mixtures: a small concentration makes a niche user, a large one a broad one."""
    concentration = np.exp(rng.normal(np.log(0.3), 1.0, size=n))
    g = rng.gamma(concentration[:, None] * share[None, :] * len(share)) + 1e-12
    return np.asarray(g / g.sum(axis=1, keepdims=True), dtype=np.float64)


def _concat(parts: Sequence[Rows]) -> Rows:
    code, li, ki, ts, value = (np.concatenate([p[j] for p in parts]) for j in range(5))
    return code, li, ki, ts, value


def _context_prefix(request_id: str, surface: str, device: str) -> str:
    """The stored context JSON (as `context_json` writes it) up to the position value.

    Only the world's own ids and names go in, none of which needs escaping in JSON.
    """
    return f'{{"request_id":"{request_id}","surface":"{surface}","device":"{device}","position":'


def _draw_users(
    rng: np.random.Generator, c: WorldConfig, centroids: Floats, share: Floats
) -> dict[str, NDArray[Any]]:
    """Users: taste mixtures and factors, heavy-tailed activity, signup, profile, consent."""
    m, sigma, start = c.n_users, c.activity_sigma, to_micros(c.start)
    taste = _tastes(rng, m, share)
    noise = rng.normal(scale=NOISE * CENTROID_NORM / np.sqrt(c.factors), size=(m, c.factors))
    late = rng.random(m) < 0.2  # a fifth of the users sign up during the period
    signup = np.where(late, start + rng.random(m) * c.days * DAY, start - rng.random(m) * 730 * DAY)
    age = rng.choice(len(vocab.AGE_BANDS), size=m, p=vocab.AGE_P)
    country = rng.choice(len(vocab.COUNTRIES), size=m, p=vocab.COUNTRY_P)
    return {
        "user_ids": np.array([f"u{i:06d}" for i in range(m)]),
        "user_taste": taste,
        "user_factors": taste @ centroids + noise,
        "activity": np.minimum(rng.lognormal(-(sigma**2) / 2, sigma, m), 50.0),  # mean 1
        "signup": signup.astype(np.int64),
        "user_profile": np.stack([age, country], axis=1),
        "consent": rng.random((m, len(PURPOSES))) < np.array(CONSENT_P),
    }


def _draw_items(
    rng: np.random.Generator, c: WorldConfig, centroids: Floats, share: Floats, words: Ints
) -> dict[str, NDArray[Any]]:
    """Items: 1-3 categories, factors near theirs, provider, text, price, lifetime, popularity."""
    n, start = c.n_items, to_micros(c.start)
    cats = rng.choice(c.n_categories, size=(n, 3), p=share)
    extra = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])  # categories beyond the first
    cats[:, 1:][(np.arange(1, 3) > extra[:, None]) | (cats[:, 1:] == cats[:, :1])] = -1
    cats[cats[:, 2] == cats[:, 1], 2] = -1
    weights = np.where(cats >= 0, np.array([1.0, 0.5, 0.3]), 0.0)
    mean = (weights[..., None] * centroids[cats.clip(0)]).sum(1) / weights.sum(1, keepdims=True)
    noise = rng.normal(scale=NOISE * CENTROID_NORM / np.sqrt(c.factors), size=mean.shape)
    home = rng.integers(c.n_categories, size=c.n_providers)
    provider = rng.integers(c.n_providers, size=n)
    for cat in np.unique(home):  # most items come from a provider of their topic
        pick = (cats[:, 0] == cat) & (rng.random(n) < 0.7)
        provider[pick] = rng.choice(np.flatnonzero(home == cat), size=int(pick.sum()))
    tags = vocab.draw_words(rng, cats, words, 3, 1.0)
    tags[:, 1:][np.arange(1, 3) > rng.integers(3, size=n)[:, None]] = -1
    level = rng.lognormal(3.0, 0.8, c.n_categories)[cats[:, 0]]
    new = rng.random(n) < c.new_item_share  # the others were published in the year before
    published = np.where(
        new, start + rng.random(n) * c.days * DAY, start - rng.random(n) * 365 * DAY
    )
    published = published.astype(np.int64)
    lifetime = ((3 + rng.random(n) * 57) * DAY).astype(np.int64)
    return {
        "item_categories": cats,
        "item_factors": mean + noise,
        "provider": provider,
        "tags": tags,
        "title": vocab.draw_words(rng, cats, words, 4, 0.75),
        "text": vocab.draw_words(rng, cats, words, 36, 0.6),
        "price": np.round(level * rng.lognormal(0.0, 0.5, n), 2),
        "published": published,
        "expires": np.where(rng.random(n) < c.expiring_share, published + lifetime, NEVER),
        "log_popularity": -c.popularity_exponent * np.log1p(rng.permutation(n).astype(float)),
    }


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
        users = _draw_users(rng, config, centroids, share)
        items = _draw_items(rng, config, centroids, share, category_words)
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
        return np.asarray((1.0 + pos) ** -np.take(DEVICE_DECAY, device) * _sigmoid(logit))

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
        rows = self._react(rng, vec, items, valid, np.array([t0]), *self._surface_device(context))
        contexts = [
            context_json(base.model_copy(update={"position": k})) for k in range(items.size)
        ]
        sessions = pa.array([session_id or token])
        return self._table(
            rows, items, user, sessions, pa.array(contexts).take(rows[2]), f"{token}-"
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
            table = pa.concat_tables([carry, self._day(day)])
            ts = table.column("ts").to_numpy()
            order = np.argsort(ts, kind="stable")  # stable: at equal ts, causes stay first
            table, ts = table.take(order), ts[order]
            cut = len(ts) if day == last else int(np.searchsorted(ts, start + (day + 1) * DAY))
            ready, carry = pa.concat_tables([ready, table.slice(0, cut)]), table.slice(cut)
            while ready.num_rows >= batch_size or (day == last and ready.num_rows):
                yield ready.slice(0, batch_size).combine_chunks()
                ready = ready.slice(batch_size)

    def _day(self, day: int) -> pa.Table:
        """One day of sessions: lists chosen by the logging policy, then the reactions."""
        c, a, rng = self.config, self.arrays, np.random.default_rng([self.config.seed, 1, day])
        t_day, tag = to_micros(c.start) + day * DAY, f"w{c.seed}-"
        weekly = 1.15 if from_micros(t_day).weekday() >= 5 else 1.0
        rate = c.sessions_per_day * weekly * a.activity * (a.signup < t_day)
        user = np.repeat(np.arange(len(rate)), rng.poisson(rate))
        n_anon = int(rng.poisson(c.anonymous_share / (1 - c.anonymous_share) * len(user)))
        anon = _tastes(rng, n_anon, a.user_taste.mean(axis=0)) @ a.centroids
        anon += rng.normal(scale=NOISE * CENTROID_NORM / np.sqrt(c.factors), size=anon.shape)
        vec = np.concatenate([a.user_factors[user], anon])
        vec += rng.normal(scale=SESSION_DRIFT / np.sqrt(c.factors), size=vec.shape)
        user, s = np.concatenate([user, np.full(n_anon, -1)]), len(user) + n_anon
        hours = rng.choice(24, size=s, p=DIURNAL / DIURNAL.sum()) + rng.random(s)
        device = rng.choice(len(DEVICES), size=s, p=DEVICE_P)
        n_lists = 1 + rng.poisson(c.lists_per_session - 1, size=s)
        sess = np.repeat(np.arange(s), n_lists)
        first = np.cumsum(n_lists) - n_lists
        gaps = 20 + rng.exponential(60.0, size=len(sess))
        gaps[first] = 0.0
        elapsed = np.cumsum(gaps)
        t0 = t_day + _us(hours * 3600)[sess] + _us(elapsed - elapsed[first][sess])
        surface, device = rng.choice(len(SURFACES), size=len(sess), p=SURFACE_P), device[sess]
        items, valid = self._logged_lists(rng, vec[sess], t0)
        li, ki = np.nonzero(valid)
        shown: Rows = (
            np.full(len(li), CODE["impression"]),
            li,
            ki,
            t0[li],
            np.full(len(li), np.nan),
        )
        rows = _concat([shown, self._react(rng, vec[sess], items, valid, t0, surface, device)])
        prefix = [
            _context_prefix(f"{tag}r{day}-{j}", SURFACES[surface[j]], DEVICES[device[j]])
            for j in range(len(sess))
        ]
        position = pc.cast(pa.array(rows[2]), pa.string())
        contexts = pc.binary_join_element_wise(
            pa.array(prefix, pa.string()).take(rows[1]), position, "}", ""
        )
        sessions = pa.array([f"{tag}s{day}-{i}" for i in range(s)], pa.string()).take(sess)
        return self._table(rows, items, user[sess], sessions, contexts, f"{tag}{day}-")

    def _logged_lists(
        self, rng: np.random.Generator, vec: Floats, t0: Ints
    ) -> tuple[Ints, NDArray[np.bool_]]:
        """The logging policy: a pool drawn by popularity (and a fifth uniformly) among live
        items, ranked by affinity plus Gumbel noise; the top `list_size` distinct items."""
        a, k = self.arrays, self.config.list_size
        lo, hi = (t0.min(), t0.max()) if len(t0) else (0, 0)
        cand = np.flatnonzero((a.published <= hi) & (a.expires > lo))
        if len(cand) == 0:
            return np.zeros((len(t0), 0), np.int64), np.zeros((len(t0), 0), bool)
        cdf = np.cumsum(np.exp(a.log_popularity[cand]))
        popular = np.searchsorted(cdf, rng.random((len(t0), 4 * k)) * cdf[-1], side="right")
        pool = np.sort(cand[np.hstack([popular, rng.integers(len(cand), size=(len(t0), k))])])
        score = POLICY_AFFINITY * np.einsum("lf,lpf->lp", vec, a.item_factors[pool])
        score += rng.gumbel(size=score.shape)
        t = t0[:, None]
        score[(a.published[pool] > t) | (a.expires[pool] <= t)] = -np.inf
        score[:, 1:][pool[:, 1:] == pool[:, :-1]] = -np.inf  # each item once per list
        top = np.argsort(-score, axis=1, kind="stable")[:, : min(k, len(cand))]
        valid = np.isfinite(np.take_along_axis(score, top, axis=1))
        return np.take_along_axis(pool, top, axis=1), valid

    def _react(
        self,
        rng: np.random.Generator,
        vec: Floats,
        items: Ints,
        valid: NDArray[np.bool_],
        t0: Ints,
        surface: Ints,
        device: Ints,
    ) -> Rows:
        """Reactions to shown lists: dismissals; clicks, then view, dwell, likes, cart, rating."""
        mix = self.config.mix
        aff = np.einsum("lf,lkf->lk", vec, self.arrays.item_factors[items])
        pos = np.broadcast_to(np.arange(items.shape[1]), items.shape)
        p_click = self._p_click(aff, items, pos, surface[:, None], device[:, None])
        click = valid & (rng.random(items.shape) < p_click)
        unhappy = 2 * mix.dismiss * (1 - _sigmoid(aff - 1))
        di, dk = np.nonzero(valid & ~click & (rng.random(items.shape) < unhappy))
        li, ki = np.nonzero(click)
        n, affinity = len(li), aff[li, ki]
        q = _sigmoid(affinity - 1 + rng.normal(0.0, 0.5, n))  # satisfaction after the click
        t_click = t0[li] + _us(1 + 1.5 * ki + rng.exponential(4.0, n))
        dwell = np.round(mix.dwell_median * np.exp(2 * (q - 0.5) + rng.normal(0.0, 0.5, n)), 1)
        t_end = t_click + SECOND // 2 + _us(dwell)
        u = rng.random((7, n))
        like, cart = u[0] < 2 * mix.like * q, u[1] < 2 * mix.add_to_cart * q
        buy = cart & (u[2] < mix.purchase)
        t_buy = t_end + _us(32 + rng.exponential(300.0, n))
        stars = np.clip(np.rint(2.5 + affinity + rng.normal(0.0, 0.6, n)), 1, 5)
        t_rate = np.where(buy, t_buy, t_end) + _us(5 + rng.exponential(60.0, n))
        t_dismiss = t0[di] + _us(2 + rng.exponential(3.0, len(di)))
        parts: list[Rows] = [
            (np.full(len(di), CODE["dismiss"]), di, dk, t_dismiss, np.full(len(di), np.nan))
        ]
        nan, price = np.full(n, np.nan), self.arrays.price[items[li, ki]]
        for code, mask, ts, value in (
            (CODE["click"], None, t_click, nan),
            (CODE["view"], None, t_click + SECOND // 2, nan),
            (CODE["dwell"], None, t_end, dwell),
            (CODE["skip"], (dwell < 0.3 * mix.dwell_median) & (u[3] < mix.skip), t_end + 1, nan),
            (CODE["like"], like, t_end + SECOND, nan),
            (CODE["dislike"], ~like & (u[4] < 2 * mix.dislike * (1 - q)), t_end + SECOND, nan),
            (CODE["share"], u[5] < 2 * mix.share * q, t_end + 3 * SECOND // 2, nan),
            (CODE["add_to_cart"], cart, t_end + 2 * SECOND, nan),
            (CODE["purchase"], buy, t_buy, price),
            (CODE["rating"], u[6] < mix.rating * np.where(buy, 3, 1), t_rate, stars),
        ):
            m = np.ones(n, bool) if mask is None else mask
            parts.append((np.full(int(m.sum()), code), li[m], ki[m], ts[m], value[m]))
        return _concat(parts)

    def _table(
        self, rows: Rows, items: Ints, user: Ints, sessions: pa.Array, contexts: pa.Array, ids: str
    ) -> pa.Table:
        """Rows as an event table; `user` is per list, -1 for an anonymous session."""
        code, li, ki, ts, value = rows
        who, number = user[li], pc.cast(pa.array(np.arange(len(code))), pa.string())
        columns = {
            "event_id": pc.binary_join_element_wise(ids, number, ""),
            "user_id": self._user_column.take(pa.array(who.clip(0), mask=who < 0)),
            "session_id": sessions.take(li),
            "item_id": self._item_column.take(items[li, ki]),
            "type": pa.array(TYPES).take(code),
            "value": pa.array(value, mask=np.isnan(value)),
            "ts": pa.array(ts, pa.int64()),
            "context": contexts,
        }
        return pa.table(columns, schema=EVENT_TABLE_SCHEMA)

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
