"""How long erasure takes at scale: DELETE /v1/users/{id}'s work on the serving world.

Copies the serving benchmark's world (1,000,000 users, 10,000,000 interactions, 100,000
items, an active iALS + popular bundle; `bench/serving_world.py` builds it) to
bench/out/erasure-world/, loads the served engine as a service worker does, then erases
`--users` random people one after another with the service's code path
(`penchant.jobs.erase.erase` with the worker's loaded engine), and reports the latency of
each erasure (p50, p99, max), what it removed, and the peak memory.

    .venv/bin/python bench/erasure_bench.py [--users 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from typing import Any

import numpy as np

from penchant.jobs.erase import erase
from penchant.jobs.store import settings_store
from penchant.service.serving import ServedModels
from penchant.settings import load_settings
from penchant.store.state import MemoryState
from serving_world import OUT, STAMP, WORLD  # a script beside this one

COPY = OUT / "erasure-world"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="people to erase")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (WORLD / STAMP).is_file():
        sys.exit("no serving world: run bench/serving_world.py first")
    world = json.loads((WORLD / STAMP).read_text())
    if COPY.exists():
        shutil.rmtree(COPY)
    started = time.perf_counter()
    shutil.copytree(WORLD, COPY)
    copy_s = time.perf_counter() - started
    settings = load_settings(COPY, serving={"log_impressions": False})
    store = settings_store(settings)
    state = MemoryState()
    serving = ServedModels(settings, store, state)
    serving.start()
    n_users = int(world["params"]["users"])
    rng = np.random.default_rng(args.seed)
    people = [f"u{u:07d}" for u in rng.choice(n_users, size=args.users, replace=False)]
    latencies, counts = [], []
    for person in people:
        t0 = time.perf_counter()
        receipt = erase(settings, store, state, person, served=serving.forget_user)
        latencies.append(time.perf_counter() - t0)
        counts.append(receipt.counts)
    serving.close()
    store.close()
    ms = np.asarray(latencies) * 1000
    result = {
        "world": {k: world["params"][k] for k in ("users", "items")} | {"events": world["events"]},
        "erased": len(people),
        "latency_ms": {
            "p50": round(float(np.percentile(ms, 50)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1),
            "max": round(float(ms.max()), 1),
            "mean": round(float(ms.mean()), 1),
            "first": round(float(ms[0]), 1),
            "slowest_at": int(ms.argmax()),
        },
        "mean_counts": {
            part: round(float(np.mean([c.get(part, 0) for c in counts])), 2)
            for part in sorted({p for c in counts for p in c})
        },
        "copy_s": round(copy_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result, indent=2))
    (OUT / "erasure.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
