"""Does the learned ranker serve better lists when it learns from logged impressions?

A simulated world knows each person's true click chance for any item at any position
(`World.click_probability`), so a served list can be judged by what it would really earn:
its expected clicks. Per world seed:

1. the world's logged history (lists chosen by its own logging policy, and the reactions)
   goes into a SQLite store, as `penchant train` reads it;
2. deployment: a hybrid ranker trained on held-out pairs serves every known person
   `--lists-per-day` top-10 lists a day for `--deploy-days` days (0, then 3, by default:
   the world's history alone, then with lists Penchant served), each at its own time and
   device; the world reacts (`World.respond`), and the lists (impressions with request id
   and position) and reactions are stored, as the service stores them;
3. on everything stored, the hybrid is trained once on held-out pairs alone and once, as
   `penchant train` does, with the served lists and their outcomes too
   (`Dataset.impressions`);
4. every model serves each of a sample of known people a top-10 just after the data ends,
   and the expected clicks of those lists (positions 0 to 9, on the person's device) are
   averaged. Popularity and iALS are there for scale.

    .venv/bin/python bench/impression_bench.py [--seeds 0 1 2] [--deploy-days 0 3]
        [--out bench/out/impressions.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from penchant.data import Dataset, Weighting, build_dataset, impression_log
from penchant.ingest.world import World, WorldConfig
from penchant.ingest.world_draw import DEVICE_P, DEVICES
from penchant.models import Hybrid, ImplicitALS, Popular, Recommender
from penchant.schema import EventContext
from penchant.schema.common import from_micros
from penchant.store import EventFilter, Store, open_store
from penchant.store.base import EVENT_TABLE_SCHEMA
from penchant.store.convert import context_json

TENANT = "default"
K = 10
DAY_US = 86_400 * 1_000_000


def read(store: Store) -> Dataset:
    """The stored interactions with the log of served lists, as training reads them."""
    data = build_dataset(store.events.interactions(TENANT))
    rules = Weighting()
    pages = store.events.scan(TENANT, EventFilter(types=("impression", *rules.positive_types)))
    return data.with_impressions(impression_log(chain.from_iterable(pages), data, rules))


def deploy(
    world: World,
    store: Store,
    model: Hybrid,
    data: Dataset,
    args: argparse.Namespace,
    days: int,
    seed: int,
) -> int:
    """Serve every known person lists with `model` for `days` days after the
    data ends; store the impressions and the world's reactions. Returns the lists served."""
    gen = np.random.default_rng([seed, 7])
    start = int(data.last_ts.max())
    served = 0
    for day in range(days):
        tables = []
        for user in range(data.n_users):
            for n in range(args.lists_per_day):
                at = start + int((day + gen.random()) * DAY_US)
                device = DEVICES[gen.choice(len(DEVICES), p=DEVICE_P)]
                cands, _ = model.rank_candidates(
                    data.matrix[[user]], user=user, now_us=at, device=device
                )
                ids = [str(i) for i in data.item_ids[cands[:K]]]
                request = f"deploy-{seed}-{day}-{user}-{n}"
                base = EventContext(request_id=request, surface="home", device=device)
                person = str(data.user_ids[user])
                tables.append(impressions(person, ids, at, base))
                tables.append(
                    world.respond(
                        person, ids, gen, base, at=from_micros(at), session_id=f"s-{request}"
                    )
                )
                served += 1
        store.events.append_table(TENANT, pa.concat_tables(tables).combine_chunks())
    return served


def impressions(user: str, items: list[str], at: int, base: EventContext) -> pa.Table:
    """One served list as impression events, as the service stores them."""
    n = len(items)
    contexts = [context_json(base.model_copy(update={"position": k})) for k in range(n)]
    columns = {
        "event_id": [f"{base.request_id}-i{k}" for k in range(n)],
        "user_id": [user] * n,
        "session_id": [f"s-{base.request_id}"] * n,
        "item_id": items,
        "type": ["impression"] * n,
        "value": [None] * n,
        "ts": [at] * n,
        "context": contexts,
    }
    return pa.table(columns, schema=EVENT_TABLE_SCHEMA)


def served_lists(
    model: Recommender, data: Dataset, users: np.ndarray, devices: list[str], now_us: int
) -> list[list[str]]:
    """Each person's top `K` item ids from the model; the hybrid's at `now_us` on their
    device (its `rank_candidates`, what the serving pipeline calls)."""
    if not isinstance(model, Hybrid):
        ids, _ = model.recommend([str(u) for u in data.user_ids[users]], k=K)
        return [[i for i in row if i] for row in ids.tolist()]
    out = []
    for user, device in zip(users, devices, strict=True):
        cands, _ = model.rank_candidates(
            data.matrix[[user]], user=int(user), now_us=now_us, device=device
        )
        out.append([str(i) for i in data.item_ids[cands[:K]]])
    return out


def expected_clicks(
    world: World, data: Dataset, users: np.ndarray, devices: list[str], lists: list[list[str]]
) -> np.ndarray:
    """Per person: the true expected clicks on their list, positions 0, 1, 2, ..."""
    out = np.zeros(len(users))
    for j, (user, device, ids) in enumerate(zip(users, devices, lists, strict=True)):
        context = EventContext(surface="home", device=device)
        out[j] = world.click_probability(str(data.user_ids[user]), ids, context=context).sum()
    return out


def run_seed(seed: int, days: int, args: argparse.Namespace) -> dict[str, Any]:
    config = WorldConfig(n_users=args.users, n_items=args.items, days=args.days, seed=seed)
    start = time.perf_counter()
    world = World.generate(config)
    ranker = {"members": tuple(args.members), "threads": 1}
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{folder}/penchant.db")
        try:
            for table in world.events():
                store.events.append_table(TENANT, table)
            history = read(store)
            served = 0
            if days:
                first = Hybrid(**ranker).fit(history.with_impressions(None))
                served = deploy(world, store, first, history, args, days, seed)
            data = read(store)
        finally:
            store.close()
    assert data.impressions is not None
    report: dict[str, Any] = {
        "seed": seed,
        "deployment days": days,
        "interactions": len(data),
        "impressions": len(data.impressions),
        "usable lists": len(data.impressions.usable_groups()),
        "lists served in deployment": served,
        "setup seconds": round(time.perf_counter() - start, 1),
    }
    gen = np.random.default_rng(seed)
    known = np.flatnonzero(data.user_counts >= 1)
    users = np.sort(gen.choice(known, size=min(args.eval_users, len(known)), replace=False))
    devices = [DEVICES[d] for d in gen.choice(len(DEVICES), size=len(users), p=DEVICE_P)]
    now_us = int(data.last_ts.max()) + 3_600_000_000
    models: dict[str, tuple[Recommender, Dataset]] = {
        "popular": (Popular(), data),
        "ials": (ImplicitALS(), data),
        "hybrid held-out": (Hybrid(**ranker), data.with_impressions(None)),
        "hybrid with impressions": (Hybrid(**ranker), data),
    }
    scores: dict[str, np.ndarray] = {}
    for name, (model, train) in models.items():
        t0 = time.perf_counter()
        model.fit(train)
        lists = served_lists(model, train, users, devices, now_us)
        scores[name] = expected_clicks(world, data, users, devices, lists)
        report[name] = {
            "expected clicks per list": round(float(scores[name].mean()), 4),
            "seconds": round(time.perf_counter() - t0, 1),
            **({"trained on": model.trained_on_} if isinstance(model, Hybrid) else {}),
        }
    diff = scores["hybrid with impressions"] - scores["hybrid held-out"]
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
    low, high = float(diff.mean() - half), float(diff.mean() + half)
    report["with impressions minus held-out"] = {
        "mean": round(float(diff.mean()), 4),
        "95% interval (normal, over people)": [round(low, 4), round(high, 4)],
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--eval-users", type=int, default=500)
    parser.add_argument("--deploy-days", type=int, nargs="+", default=[0, 3])
    parser.add_argument("--lists-per-day", type=int, default=2)
    parser.add_argument("--members", nargs="+", default=["ials", "itemknn", "popular"])
    parser.add_argument("--out", type=Path, default=Path("bench/out/impressions.json"))
    args = parser.parse_args()
    results = []
    for days in args.deploy_days:
        for seed in args.seeds:
            results.append(run_seed(seed, days, args))
            print(json.dumps(results[-1], indent=1), file=sys.stderr)
    document = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "world": {"users": args.users, "items": args.items, "days": args.days},
        "lists per person a day in deployment": args.lists_per_day,
        "eval users": args.eval_users,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
