"""The simulated world's logged history: lists a logging policy showed, and the reactions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from penchant.ingest.world_draw import (
    CENTROID_NORM,
    CODE,
    DAY,
    DEVICE_P,
    DEVICES,
    DIURNAL,
    NOISE,
    POLICY_AFFINITY,
    SECOND,
    SESSION_DRIFT,
    SURFACE_P,
    SURFACES,
    TYPES,
    Floats,
    Ints,
    Rows,
    concat_rows,
    context_prefix,
    draw_tastes,
    seconds_to_us,
    sigmoid,
)
from penchant.schema.common import from_micros, to_micros
from penchant.store.base import EVENT_TABLE_SCHEMA

if TYPE_CHECKING:
    from penchant.ingest.world import World


def day_events(world: World, day: int) -> pa.Table:
    """One day of sessions: lists chosen by the logging policy, then the reactions."""
    c, a, rng = world.config, world.arrays, np.random.default_rng([world.config.seed, 1, day])
    t_day, tag = to_micros(c.start) + day * DAY, f"w{c.seed}-"
    weekly = 1.15 if from_micros(t_day).weekday() >= 5 else 1.0
    rate = c.sessions_per_day * weekly * a.activity * (a.signup < t_day)
    user = np.repeat(np.arange(len(rate)), rng.poisson(rate))
    n_anon = int(rng.poisson(c.anonymous_share / (1 - c.anonymous_share) * len(user)))
    anon = draw_tastes(rng, n_anon, a.user_taste.mean(axis=0)) @ a.centroids
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
    t0 = t_day + seconds_to_us(hours * 3600)[sess] + seconds_to_us(elapsed - elapsed[first][sess])
    surface, device = rng.choice(len(SURFACES), size=len(sess), p=SURFACE_P), device[sess]
    items, valid = logged_lists(world, rng, vec[sess], t0)
    li, ki = np.nonzero(valid)
    shown: Rows = (
        np.full(len(li), CODE["impression"]),
        li,
        ki,
        t0[li],
        np.full(len(li), np.nan),
    )
    rows = concat_rows([shown, react(world, rng, vec[sess], items, valid, t0, surface, device)])
    prefix = [
        context_prefix(f"{tag}r{day}-{j}", SURFACES[surface[j]], DEVICES[device[j]])
        for j in range(len(sess))
    ]
    position = pc.cast(pa.array(rows[2]), pa.string())
    contexts = pc.binary_join_element_wise(
        pa.array(prefix, pa.string()).take(rows[1]), position, "}", ""
    )
    sessions = pa.array([f"{tag}s{day}-{i}" for i in range(s)], pa.string()).take(sess)
    return to_table(world, rows, items, user[sess], sessions, contexts, f"{tag}{day}-")


def logged_lists(
    world: World, rng: np.random.Generator, vec: Floats, t0: Ints
) -> tuple[Ints, NDArray[np.bool_]]:
    """The logging policy: a pool drawn by popularity (and a fifth uniformly) among live
    items, ranked by affinity plus Gumbel noise; the top `list_size` distinct items."""
    a, k = world.arrays, world.config.list_size
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


def react(
    world: World,
    rng: np.random.Generator,
    vec: Floats,
    items: Ints,
    valid: NDArray[np.bool_],
    t0: Ints,
    surface: Ints,
    device: Ints,
) -> Rows:
    """Reactions to shown lists: dismissals; clicks, then view, dwell, likes, cart, rating."""
    mix = world.config.mix
    aff = np.einsum("lf,lkf->lk", vec, world.arrays.item_factors[items])
    pos = np.broadcast_to(np.arange(items.shape[1]), items.shape)
    p_click = world._p_click(aff, items, pos, surface[:, None], device[:, None])
    click = valid & (rng.random(items.shape) < p_click)
    unhappy = 2 * mix.dismiss * (1 - sigmoid(aff - 1))
    di, dk = np.nonzero(valid & ~click & (rng.random(items.shape) < unhappy))
    li, ki = np.nonzero(click)
    n, affinity = len(li), aff[li, ki]
    q = sigmoid(affinity - 1 + rng.normal(0.0, 0.5, n))  # satisfaction after the click
    t_click = t0[li] + seconds_to_us(1 + 1.5 * ki + rng.exponential(4.0, n))
    dwell = np.round(mix.dwell_median * np.exp(2 * (q - 0.5) + rng.normal(0.0, 0.5, n)), 1)
    t_end = t_click + SECOND // 2 + seconds_to_us(dwell)
    u = rng.random((7, n))
    like, cart = u[0] < 2 * mix.like * q, u[1] < 2 * mix.add_to_cart * q
    buy = cart & (u[2] < mix.purchase)
    t_buy = t_end + seconds_to_us(32 + rng.exponential(300.0, n))
    stars = np.clip(np.rint(2.5 + affinity + rng.normal(0.0, 0.6, n)), 1, 5)
    t_rate = np.where(buy, t_buy, t_end) + seconds_to_us(5 + rng.exponential(60.0, n))
    t_dismiss = t0[di] + seconds_to_us(2 + rng.exponential(3.0, len(di)))
    parts: list[Rows] = [
        (np.full(len(di), CODE["dismiss"]), di, dk, t_dismiss, np.full(len(di), np.nan))
    ]
    nan, price = np.full(n, np.nan), world.arrays.price[items[li, ki]]
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
    return concat_rows(parts)


def to_table(
    world: World,
    rows: Rows,
    items: Ints,
    user: Ints,
    sessions: pa.Array,
    contexts: pa.Array,
    ids: str,
) -> pa.Table:
    """Rows as an event table; `user` is per list, -1 for an anonymous session."""
    code, li, ki, ts, value = rows
    who, number = user[li], pc.cast(pa.array(np.arange(len(code))), pa.string())
    columns = {
        "event_id": pc.binary_join_element_wise(ids, number, ""),
        "user_id": world._user_column.take(pa.array(who.clip(0), mask=who < 0)),
        "session_id": sessions.take(li),
        "item_id": world._item_column.take(items[li, ki]),
        "type": pa.array(TYPES).take(code),
        "value": pa.array(value, mask=np.isnan(value)),
        "ts": pa.array(ts, pa.int64()),
        "context": contexts,
    }
    return pa.table(columns, schema=EVENT_TABLE_SCHEMA)
