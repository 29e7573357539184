"""How much each pipeline's first list earns in the simulated world, against popular and an
oracle: the low-noise counterpart of `penchant simulate`'s A/B test.

Per world seed, a shop is built as `penchant simulate` builds it (the demo's world with that
seed: its history stored in SQLite, the default models trained and served), then each of a
sample of its people gets one top-10 from each pipeline, in process, from the trained bundle:

- `popular`: the built-in non-personalized arm of `penchant simulate`;
- `without_taste`: the default surface's stages without the `taste` source;
- `default`: the default surface, as `personalized` serves it;
- `oracle`: the ten live items the person has not taken with the highest true click chance.

Each list is judged by its expected clicks under the world's true click model
(`World.click_probability`, positions 0 to 9, desktop), and the table gives the mean per
person and each pipeline's lift over popular.

    .venv/bin/python bench/simulated_lift.py [--seeds 7 0 1 2 3 4] [--users 2000]
        [--people 800] [--out bench/out/simulated_lift.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import track

from penchant.cli.ab_simulation import POPULAR
from penchant.ingest.world import World
from penchant.jobs.demo import DEMO_WORLD
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.simulate import prepare_world
from penchant.ranking.engine import Engine
from penchant.ranking.pipeline import DEFAULT_STAGES
from penchant.ranking.request import RankingRequest
from penchant.settings import load_settings

PIPELINES = ("popular", "without_taste", "default", "oracle")


def oracle_list(world: World, person: str, taken: set[str], live: list[str]) -> list[str]:
    """The ten live items the person has not taken with the highest true click chance."""
    candidates = [i for i in live if i not in taken]
    first = world.click_probability(person, candidates, positions=[0] * len(candidates))
    return [candidates[j] for j in np.argsort(-first, kind="stable")[:10]]


def run_seed(seed: int, users: int, people: int) -> dict[str, Any]:
    """Build the seed's shop in a temporary directory and judge each pipeline's first lists."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(Path(tmp))
        started = time.perf_counter()
        _, world = prepare_world(
            settings, DEMO_WORLD.model_copy(update={"n_users": users, "seed": seed})
        )
        built = time.perf_counter() - started
        bundle = ModelRegistry.of(settings).load()
        items = world.items()
        surfaces = {"popular": POPULAR.stages, "without_taste": DEFAULT_STAGES}
        engine = Engine(
            bundle.version, bundle.models, items, surfaces, exclusions=bundle.exclusions
        )
        now = datetime.now(UTC)
        live = [i.id for i in items if i.expires_at is None or i.expires_at > now]
        model = bundle.models["popular"]
        known = np.asarray(model.item_ids_).astype(str)
        rng = np.random.default_rng(seed)
        sample = rng.choice(world.arrays.user_ids, size=min(people, users), replace=False)
        clicks: dict[str, list[float]] = {name: [] for name in PIPELINES}
        for person in track(sample.tolist(), description=f"seed {seed}: first lists"):
            for name in ("popular", "without_taste", "default"):
                asked = RankingRequest(user_id=person, k=10, surface=name, context={"time": now})
                shown = engine.recommend(asked).item_ids
                clicks[name].append(float(world.click_probability(person, shown).sum()))
            code = int(model.user_codes([person])[0])
            taken = set(known[model.history_[code].indices]) if code >= 0 else set()
            best = oracle_list(world, person, taken, live)
            clicks["oracle"].append(float(world.click_probability(person, best).sum()))
    mean = {name: float(np.mean(values)) for name, values in clicks.items()}
    return {
        "seed": seed,
        "people": len(sample),
        "build_seconds": round(built, 1),
        "expected_clicks": {k: round(v, 4) for k, v in mean.items()},
        "lift_over_popular": {k: round(v / mean["popular"] - 1, 4) for k, v in mean.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 0, 1, 2, 3, 4])
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--people", type=int, default=800)
    parser.add_argument("--out", type=Path, default=Path("bench/out/simulated_lift.json"))
    args = parser.parse_args()
    console = Console()
    rows = [run_seed(seed, args.users, args.people) for seed in args.seeds]
    console.print("seed | " + " | ".join(PIPELINES))
    for row in rows:
        cells = [
            f"{row['expected_clicks'][p]:.3f} ({100 * row['lift_over_popular'][p]:+.1f}%)"
            for p in PIPELINES
        ]
        console.print(f"{row['seed']} | " + " | ".join(cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "users": args.users,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written: {args.out}")


if __name__ == "__main__":
    main()
