"""The serving benchmark's world: 100,000 items, 1,000,000 users, a trained iALS bundle.

Builds (once; reused while its parameters match the stamp `world.json`) a data directory
under bench/out/serving-world/ holding:

- a SQLite store with a catalog of `--items` items (`i000000`..): 50 categories `c00`..`c49`
  of Zipf-like sizes, a `price` attribute 1..1000, 5% `available=false`, 1,000 providers
  and titles;
- about `--per-user` distinct interactions for each of `--users` users (`u0000000`..),
  drawn from a planted structure: every user has a home category (70% of draws) and a
  second taste (20%), the rest follow global popularity; within a category popularity is
  Zipf-like. Each user's events fall in one visit (a few minutes) at a random moment of 60
  days, so events of different users interleave in time;
- an active model bundle of `popular` and a 64-factor `ials`, trained by
  `penchant.jobs.train.train`, the code path of `penchant train`.

Because each user's events fall in one short visit, the temporal split `train` judges the
models on (newest 20% of pairs) keeps only the few users whose visit straddles the cut-off:
the offline metrics in the manifest are computed on those few and are not meaningful here.

    .venv/bin/python bench/serving_world.py [--rebuild] [--users 1000000 --items 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from scale_models import first_distinct  # a script beside this one

OUT = Path(__file__).resolve().parent / "out"
WORLD = OUT / "serving-world"
STAMP = "world.json"
FORMAT = 1
TENANT = "default"
#: Event types of the interactions and how often each occurs.
TYPES = {"view": 0.70, "click": 0.20, "add_to_cart": 0.06, "purchase": 0.04}


@dataclass(frozen=True)
class WorldParams:
    """What the world is made of; a change rebuilds it."""

    users: int = 1_000_000
    items: int = 100_000
    per_user: int = 10
    categories: int = 50
    providers: int = 1_000
    unavailable: float = 0.05
    factors: int = 64
    epochs: int = 5
    seed: int = 0
    format: int = FORMAT


def _log(text: str) -> None:
    print(f"[world {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def user_id(code: int) -> str:
    """The id of user `code`."""
    return f"u{code:07d}"


def item_id(code: int) -> str:
    """The id of item `code`."""
    return f"i{code:06d}"


def category_sizes(params: WorldParams) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Items per category: Zipf-like (exponent 0.7), every category non-empty."""
    weights = 1.0 / np.arange(1, params.categories + 1) ** 0.7
    sizes = np.maximum(1, np.floor(weights / weights.sum() * params.items)).astype(np.int64)
    sizes[0] += params.items - sizes.sum()
    return sizes


def make_catalog(params: WorldParams) -> dict[str, np.ndarray[Any, Any]]:
    """Per item code: category, price, availability, provider and within-category rank.

    Items are assigned to categories at random (ids say nothing about the category), and
    each category's items get a random popularity rank.
    """
    gen = np.random.default_rng(params.seed)
    sizes = category_sizes(params)
    by_category = gen.permutation(params.items)  # category c holds a slice of this
    category = np.empty(params.items, dtype=np.int64)
    rank = np.empty(params.items, dtype=np.int64)
    start = 0
    for c, size in enumerate(sizes):
        members = by_category[start : start + size]
        category[members] = c
        rank[members] = np.arange(size)
        start += size
    return {
        "category": category,
        "rank": rank,
        "by_category": by_category,
        "sizes": sizes,
        "price": gen.integers(1, 1001, params.items),
        "available": gen.random(params.items) >= params.unavailable,
        "provider": gen.integers(0, params.providers, params.items),
    }


def make_interactions(
    params: WorldParams, catalog: dict[str, np.ndarray[Any, Any]]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(user code, item code) pairs, about `per_user` distinct items per user, user-major."""
    gen = np.random.default_rng(params.seed + 1)
    sizes, by_category = catalog["sizes"], catalog["by_category"]
    n_cat = params.categories
    # a concatenated CDF: category c's items occupy (c, c + 1], Zipf 0.9 within it
    cdf = np.empty(params.items, dtype=np.float64)
    start = 0
    for c, size in enumerate(sizes):
        w = np.cumsum(1.0 / np.arange(1, size + 1) ** 0.9)
        cdf[start : start + size] = c + w / w[-1]
        start += size
    cdf[-1] = n_cat  # guard against rounding at the top
    cat_weight = sizes / sizes.sum()
    home = gen.choice(n_cat, size=params.users, p=cat_weight)
    second = gen.choice(n_cat, size=params.users, p=cat_weight)
    draws = params.per_user * 2
    which = gen.random((params.users, draws))
    cats = np.where(which < 0.7, home[:, None], second[:, None])
    popular = which >= 0.9  # the rest: a category by its share of all traffic
    cats[popular] = gen.choice(n_cat, size=int(popular.sum()), p=cat_weight)
    position = np.searchsorted(cdf, cats + gen.random(cats.shape), side="left")
    drawn = by_category[np.minimum(position, params.items - 1)].reshape(params.users, draws)
    keep = first_distinct(drawn, params.per_user)  # each user's first distinct items
    users = np.repeat(np.arange(params.users, dtype=np.int64), keep.sum(axis=1))
    return users, drawn[keep].astype(np.int64)


def event_table(
    params: WorldParams, users: np.ndarray[Any, Any], items: np.ndarray[Any, Any], end: datetime
) -> Any:
    """The interactions as an `EVENT_TABLE_SCHEMA` table in time order (no event ids)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from penchant.store import EVENT_TABLE_SCHEMA

    gen = np.random.default_rng(params.seed + 2)
    span = 60 * 86_400 * 1_000_000
    visit = gen.integers(0, span, params.users)  # when each user's visit starts
    step = gen.integers(30, 300, len(users)) * 1_000_000  # 30 s to 5 min between events
    counts = np.bincount(users, minlength=params.users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    offset = np.cumsum(step) - np.repeat(np.cumsum(step)[starts] - step[starts], counts)
    ts = int(end.timestamp() * 1_000_000) - span + visit[users] + offset
    order = np.argsort(ts, kind="stable")
    users, items, ts = users[order], items[order], ts[order]
    names = np.array(list(TYPES))
    types = names[gen.choice(len(names), size=len(users), p=list(TYPES.values()))]
    n = len(users)
    user_ids = pc.binary_join_element_wise(
        "u", pc.utf8_lpad(pc.cast(pa.array(users), pa.string()), 7, "0"), ""
    )
    item_ids = pc.binary_join_element_wise(
        "i", pc.utf8_lpad(pc.cast(pa.array(items), pa.string()), 6, "0"), ""
    )
    return pa.table(
        {
            "event_id": pa.nulls(n, pa.string()),
            "user_id": user_ids,
            "session_id": pa.nulls(n, pa.string()),
            "item_id": item_ids,
            "type": pa.array(types, pa.string()),
            "value": pa.nulls(n, pa.float64()),
            "ts": pa.array(ts, pa.int64()),
            "context": pa.nulls(n, pa.string()),
        },
        schema=EVENT_TABLE_SCHEMA,
    )


def catalog_items(params: WorldParams, catalog: dict[str, np.ndarray[Any, Any]]) -> list[Any]:
    """The catalog as `Item` records."""
    from penchant.schema import Item

    out = []
    for code in range(params.items):
        cat = int(catalog["category"][code])
        out.append(
            Item(
                id=item_id(code),
                title=f"c{cat:02d} item {int(catalog['rank'][code]) + 1}",
                categories=[f"c{cat:02d}"],
                provider=f"p{int(catalog['provider'][code]):04d}",
                attributes={"price": int(catalog["price"][code])},
                available=bool(catalog["available"][code]),
            )
        )
    return out


def read_stamp(world: Path = WORLD) -> dict[str, Any] | None:
    """The stamp of a built world, or None."""
    try:
        stamp: dict[str, Any] = json.loads((world / STAMP).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return stamp


def ensure(
    params: WorldParams | None = None, *, rebuild: bool = False, world: Path = WORLD
) -> dict[str, Any]:
    """The world's stamp, building the world first unless one with these parameters exists.

    Returns:
        The stamp: `params`, `timings` (seconds per build step), `events`, `version`
        (the active model version) and `manifest` (its training manifest).
    """
    params = params or WorldParams()
    stamp = read_stamp(world)
    if (
        not rebuild
        and stamp is not None
        and stamp.get("params") == asdict(params)
        and (world / "models" / TENANT / "recommender" / "ACTIVE").exists()
    ):
        _log(f"reusing the world built {stamp['built_at']} ({stamp['events']:,} events)")
        return stamp
    return build(params, world)


def build(params: WorldParams, world: Path = WORLD) -> dict[str, Any]:
    """Build the world from nothing into `world` (removing what was there)."""
    from rich.console import Console

    from penchant.jobs.train import train
    from penchant.settings import load_settings
    from penchant.store import open_store

    if world.exists():
        shutil.rmtree(world)
    world.mkdir(parents=True)
    timings: dict[str, float] = {}
    began = time.perf_counter()

    def step(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 1)
        _log(f"{name}: {timings[name]} s")

    started = time.perf_counter()
    catalog = make_catalog(params)
    users, items = make_interactions(params, catalog)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    table = event_table(params, users, items, end)
    del users, items
    step("generate", started)
    _log(f"{table.num_rows:,} interactions for {params.users:,} users")

    settings = load_settings(world)
    # the build needs no durability: a crash means a rebuild
    store = open_store(settings.store_url, synchronous="OFF")
    try:
        started = time.perf_counter()
        records = catalog_items(params, catalog)
        for i in range(0, len(records), 10_000):
            store.catalog.upsert_items(TENANT, records[i : i + 10_000])
        step("catalog", started)

        started = time.perf_counter()
        chunk = 1_000_000
        for i in range(0, table.num_rows, chunk):
            store.events.append_table(TENANT, table.slice(i, chunk))
            done = min(i + chunk, table.num_rows)
            rate = done / (time.perf_counter() - started)
            _log(f"events: {done:,} / {table.num_rows:,} stored ({rate:,.0f}/s)")
        step("events", started)
        n_events = table.num_rows
        del table

        started = time.perf_counter()
        _log("training popular and ials (reads the events, judges, fits, publishes)")
        result = train(
            settings,
            store,
            models=["popular", "ials"],
            params={"ials": {"factors": params.factors, "epochs": params.epochs}},
            activate=True,
            console=Console(stderr=True),
        )
        step("train", started)
    finally:
        store.close()
    manifest = result.manifest
    for name, entry in manifest["models"].items():
        timings[f"fit {name}"] = entry["fit_seconds"]
    timings["total"] = round(time.perf_counter() - began, 1)
    stamp = {
        "params": asdict(params),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": n_events,
        "version": result.version,
        "timings": timings,
        "build_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "database_mib": round((world / "penchant.db").stat().st_size / 2**20),
        "manifest": manifest,
    }
    (world / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    _log(f"built in {timings['total']} s")
    return stamp


def main() -> None:
    """Build (or reuse) the world and print its stamp."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = WorldParams()
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--per-user", type=int, default=defaults.per_user)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--rebuild", action="store_true", help="build even if one exists")
    args = parser.parse_args()
    params = WorldParams(
        users=args.users,
        items=args.items,
        per_user=args.per_user,
        epochs=args.epochs,
        seed=args.seed,
    )
    print(json.dumps(ensure(params, rebuild=args.rebuild), indent=2))


if __name__ == "__main__":
    main()
