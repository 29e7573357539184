"""Cumulative regret of the bandit policies on the simulated slot, over hyperparameters and seeds.

The headline comparison (`penchant bandits simulate`) runs each policy once with the
settings in `penchant.jobs.bandit_sim.POLICIES`. This sweeps each policy's exploration knob
so that no policy is judged at a badly chosen setting (epsilon-greedy at its best epsilon
against LinUCB at its default, say), over several seeds (worlds, requests and clicks).
Prints a Markdown table and writes bench/out/bandit_regret.json.

    .venv/bin/python bench/bandit_regret.py --decisions 50000 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from penchant.jobs.bandit_sim import simulate_regret

SWEEP: dict[str, list[dict[str, object]]] = {
    "epsilon-greedy": [{"epsilon": e} for e in (0.02, 0.05, 0.1, 0.2)],
    "ucb1": [{"c": c} for c in (0.1, 0.25, 0.5, 1.0)],
    "thompson": [{}],
    "linucb": [{"alpha": a} for a in (0.25, 0.5, 1.0, 2.0)],
    "linear-thompson": [{"v": v} for v in (0.1, 0.2, 0.5, 1.0)],
}


def label(name: str, params: dict[str, object]) -> str:
    """A policy and its settings, e.g. `linucb alpha=0.5`."""
    return " ".join([name, *(f"{k}={v}" for k, v in params.items())])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("bench/out/bandit_regret.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    policies = {
        label(name, params): {"name": name, **params}
        for name, grid in SWEEP.items()
        for params in grid
    }
    regret: dict[str, list[float]] = {name: [] for name in policies}
    seconds: dict[str, float] = dict.fromkeys(policies, 0.0)
    started = time.perf_counter()
    for seed in seeds:
        report = simulate_regret(args.decisions, seed=seed, policies=policies)
        for run in report.runs:
            regret[run.policy].append(float(run.regret[-1]))
            seconds[run.policy] += run.seconds
    best_greedy = min(
        (n for n in policies if n.startswith("epsilon-greedy")), key=lambda n: np.mean(regret[n])
    )
    rows: list[dict[str, Any]] = []
    for name in policies:
        ratios = np.array(regret[name]) / np.array(regret[best_greedy])
        rows.append(
            {
                "policy": name,
                "regret_by_seed": [round(r, 1) for r in regret[name]],
                "mean_regret": round(float(np.mean(regret[name])), 1),
                "vs_best_epsilon_greedy": round(float(np.mean(ratios)) - 1, 4),
                "seconds_per_run": round(seconds[name] / len(seeds), 1),
            }
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "decisions": args.decisions,
        "seeds": seeds,
        "best_epsilon_greedy": best_greedy,
        "rows": rows,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.decisions:,} decisions per run; seeds {args.seeds}; against {best_greedy}\n")
    print("| policy | regret per seed | mean | vs best epsilon-greedy | s per run |")
    print("| --- | --- | ---: | ---: | ---: |")
    for row in rows:
        per_seed = ", ".join(f"{r:,.0f}" for r in row["regret_by_seed"])
        print(
            f"| {row['policy']} | {per_seed} | {row['mean_regret']:,.0f} | "
            f"{row['vs_best_epsilon_greedy']:+.1%} | {row['seconds_per_run']:.0f} |"
        )


if __name__ == "__main__":
    main()
