"""The simulated world's parameters and how its users and items are drawn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from penchant.ingest import world_text as vocab
from penchant.schema.common import UtcDatetime, to_micros
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

    # logit of a click on an average item, before position: -4.2 gives the logged history
    # MIND-small's click-through rate (3.98% of impressions; -2 gave 15%, where click chances
    # near saturation squeezed every difference between lists)
    click_bias: float = -4.2
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
    # mean per user, Poisson times activity: 1.0 shows a person about 20 items a day, as
    # MIND-small does (156,965 lists of 38 items on average for 50,000 people in 6 days)
    sessions_per_day: float = Field(1.0, gt=0)
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


def sigmoid(x: Floats) -> Floats:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def seconds_to_us(seconds: Floats | float) -> Ints:
    return np.asarray(np.rint(np.asarray(seconds) * SECOND), dtype=np.int64)


def draw_tastes(rng: np.random.Generator, n: int, share: Floats) -> Floats:
    """Category mixtures: a small concentration makes a niche user, a large one a broad one."""
    concentration = np.exp(rng.normal(np.log(0.3), 1.0, size=n))
    g = rng.gamma(concentration[:, None] * share[None, :] * len(share)) + 1e-12
    return np.asarray(g / g.sum(axis=1, keepdims=True), dtype=np.float64)


def concat_rows(parts: Sequence[Rows]) -> Rows:
    code, li, ki, ts, value = (np.concatenate([p[j] for p in parts]) for j in range(5))
    return code, li, ki, ts, value


def context_prefix(request_id: str, surface: str, device: str) -> str:
    """The stored context JSON (as `context_json` writes it) up to the position value.

    Only the world's own ids and names go in, none of which needs escaping in JSON.
    """
    return f'{{"request_id":"{request_id}","surface":"{surface}","device":"{device}","position":'


def draw_users(
    rng: np.random.Generator, c: WorldConfig, centroids: Floats, share: Floats
) -> dict[str, NDArray[Any]]:
    """Users: taste mixtures and factors, heavy-tailed activity, signup, profile, consent."""
    m, sigma, start = c.n_users, c.activity_sigma, to_micros(c.start)
    taste = draw_tastes(rng, m, share)
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


def draw_items(
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
