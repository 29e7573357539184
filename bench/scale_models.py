"""Training at scale: 20 million synthetic interactions, 1M users, 100k items.

Stages, each in a fresh subprocess so that its peak memory is its own:
- `data`: 20M events as an Arrow table of string ids -> `build_dataset` (the code path of
  every training run), then the pairs are saved for the model stages;
- `popular`, `itemknn`, `ials`: fit on those pairs, then rank 10,000 users.

Item popularity follows a Zipf law (exponent 0.8) and every user has 20 distinct items, so
the item-item co-occurrence is realistic: popular items co-occur with most of the catalog.

    .venv/bin/python bench/scale_models.py [--users 1000000 --items 100000 --per-user 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
MODELS = {
    "popular": {},
    "itemknn": {"k": 100},
    "ials": {"factors": 64, "epochs": 15},
}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def first_distinct(draws: np.ndarray[Any, Any], per_row: int) -> np.ndarray[Any, Any]:
    """Per row of draws, a mask of its first `per_row` distinct values, in drawing order."""
    by_value = np.argsort(draws, axis=1, kind="stable")
    sorted_draws = np.take_along_axis(draws, by_value, axis=1)
    first = np.ones_like(sorted_draws, dtype=bool)
    first[:, 1:] = sorted_draws[:, 1:] != sorted_draws[:, :-1]
    is_first = np.empty_like(first)
    np.put_along_axis(is_first, by_value, first, axis=1)
    keep: np.ndarray[Any, Any] = is_first & (np.cumsum(is_first, axis=1) <= per_row)
    return keep


def make_events(users: int, items: int, per_user: int, seed: int) -> Any:
    """An event table: `per_user` distinct Zipf-popular items per user, clicks, one a minute."""
    import pyarrow as pa
    import pyarrow.compute as pc

    gen = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** 0.8
    weights /= weights.sum()
    draws = gen.choice(items, size=(users, per_user * 2), p=weights).astype(np.int64)
    keep = first_distinct(draws, per_user)
    user = np.repeat(np.arange(users), keep.sum(axis=1))
    item = draws[keep]
    order = gen.permutation(len(item))  # events arrive interleaved, not user by user
    user, item = user[order], item[order]
    ts = 1_700_000_000_000_000 + np.arange(len(user), dtype=np.int64) * 60_000_000
    user_ids = pc.binary_join_element_wise("u", pc.cast(pa.array(user), pa.string()), "")
    item_ids = pc.binary_join_element_wise("i", pc.cast(pa.array(item), pa.string()), "")
    n = len(user)
    return pa.table(
        {
            "user_id": user_ids,
            "item_id": item_ids,
            "type": pa.array(["click"] * n),
            "value": pa.nulls(n, pa.float64()),
            "ts": pa.array(ts),
        }
    )


def stage_data(args: argparse.Namespace) -> dict[str, Any]:
    from penchant.data import build_dataset

    started = time.perf_counter()
    events = make_events(args.users, args.items, args.per_user, args.seed)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    data = build_dataset(events.to_batches(max_chunksize=1_000_000))
    seconds = time.perf_counter() - started
    OUT.mkdir(exist_ok=True)
    np.savez(
        OUT / "scale-pairs.npz",
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        users=data.users,
        items=data.items,
        weights=data.weights,
        first_ts=data.first_ts,
    )
    return {
        "stage": "data",
        "events": events.num_rows,
        "users": data.n_users,
        "items": data.n_items,
        "pairs": len(data),
        "generate_seconds": round(generated, 1),
        "seconds": round(seconds, 1),
        "peak_mib": round(_peak_mib()),
    }


def stage_model(name: str) -> dict[str, Any]:
    from penchant.data import Dataset
    from penchant.models import create_model

    with np.load(OUT / "scale-pairs.npz", allow_pickle=False) as npz:
        data = Dataset.from_arrays(**{k: npz[k] for k in npz.files})
    _ = data.matrix
    loaded_mib = _peak_mib()
    model = create_model(name, **MODELS[name])
    started = time.perf_counter()
    model.fit(data)
    fit = time.perf_counter() - started
    users = np.random.default_rng(0).choice(data.n_users, 10_000, replace=False)
    started = time.perf_counter()
    codes, _ = model.rank(users, k=20)
    rank = time.perf_counter() - started
    assert (codes[:, 0] >= 0).all()
    return {
        "stage": name,
        "params": MODELS[name],
        "fit_seconds": round(fit, 1),
        "rank_10k_users_seconds": round(rank, 2),
        "peak_mib": round(_peak_mib()),
        "peak_mib_after_loading_data": round(loaded_mib),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "data":
        print(json.dumps(stage_data(args)))
        return
    if args.stage:
        print(json.dumps(stage_model(args.stage)))
        return
    results = []
    for stage in ("data", *MODELS):
        command = [sys.executable, __file__, "--stage", stage, "--users", str(args.users)]
        command += ["--items", str(args.items), "--per-user", str(args.per_user)]
        command += ["--seed", str(args.seed)]
        print(f"running {stage} ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"stage {stage} failed:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result), file=sys.stderr, flush=True)
        results.append(result)
    (OUT / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| stage | seconds | peak RSS MiB |\n| --- | ---: | ---: |")
    for r in results:
        seconds = r.get("seconds", r.get("fit_seconds"))
        print(f"| {r['stage']} | {seconds} | {r['peak_mib']} |")


if __name__ == "__main__":
    main()
