"""How much each bandit policy loses against an oracle on a simulated slot: cumulative regret.

Every policy meets the same requests and the same random numbers for clicks (common random
numbers), sees the context vector the service would build for the slot
(`penchant.content.features`), and learns from each click as the service does: a pull when
it decides, a reward when the click comes. Regret is measured in expectation: at each
decision, the true click chance of the best variant for that person and device minus that
of the chosen one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from penchant.bandits import make_policy
from penchant.content.features import featurize
from penchant.ingest.world import World, WorldConfig
from penchant.ingest.world_draw import DEVICES
from penchant.ingest.world_variants import SlotWorld
from penchant.schema.content import Slot

#: The policies compared by default, each with its default hyperparameters.
POLICIES: dict[str, dict[str, object]] = {
    name: {"name": name}
    for name in ("epsilon-greedy", "ucb1", "thompson", "linucb", "linear-thompson")
}


@dataclass
class RegretRun:
    """One policy's run: cumulative expected regret and clicks after every decision."""

    policy: str
    config: dict[str, object]
    regret: np.ndarray[Any, np.dtype[np.float64]]
    clicks: int
    seconds: float
    chosen_best: float = 0.0  # share of decisions that chose the best variant


@dataclass
class RegretReport:
    """A whole comparison, as saved in regret.json."""

    decisions: int
    seed: int
    variants: list[str]
    oracle_ctr: float
    runs: list[RegretRun] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The report without the per-decision curves (they are in the PNG)."""
        base = next((r for r in self.runs if r.policy == "epsilon-greedy"), None)
        rows = []
        for run in self.runs:
            final = float(run.regret[-1])
            row: dict[str, Any] = {
                "policy": run.policy,
                "config": run.config,
                "regret": round(final, 2),
                "ctr": round(run.clicks / self.decisions, 5),
                "chose_best": round(run.chosen_best, 4),
                "seconds": round(run.seconds, 1),
            }
            if base is not None and float(base.regret[-1]) > 0:
                row["regret_vs_epsilon_greedy"] = round(final / float(base.regret[-1]) - 1, 4)
            rows.append(row)
        return {
            "decisions": self.decisions,
            "seed": self.seed,
            "variants": self.variants,
            "oracle_ctr": round(self.oracle_ctr, 5),
            "runs": rows,
        }


def simulate_regret(
    decisions: int = 50_000,
    *,
    seed: int = 0,
    policies: Mapping[str, Mapping[str, object]] | None = None,
    world: World | None = None,
    progress: Callable[[int], None] | None = None,
) -> RegretReport:
    """Run each policy for `decisions` decisions on a simulated slot.

    Args:
        decisions: how many decisions each policy makes.
        seed: the seed of the world (when not given), the requests and the clicks.
        policies: name -> policy config; default `POLICIES`.
        world: the world; by default one of 5,000 people drawn from `seed`.
        progress: called with the number of decisions done, every thousand.

    Returns:
        The report, one run per policy, in the order given.
    """
    world = world or World.generate(WorldConfig(n_users=5_000, n_items=500, days=1, seed=seed))
    slot_world = SlotWorld(world)
    slot = Slot(
        id="sim",
        features=["device", "time", "segment"],
        segments=slot_world.segment_names,
    )
    rng = np.random.default_rng(seed)
    requests = slot_world.requests(decisions, rng)
    truth = slot_world.click_probability(requests.users, requests.devices)
    draws = rng.random(decisions)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    contexts = np.stack(
        [
            featurize(
                slot,
                at=start.replace(hour=int(h)),
                device=DEVICES[int(d)],
                segment=slot_world.segment_names[int(s)],
            )
            for h, d, s in zip(requests.hours, requests.devices, requests.segments, strict=True)
        ]
    )
    report = RegretReport(
        decisions=decisions,
        seed=seed,
        variants=slot_world.variant_ids,
        oracle_ctr=float(truth.max(axis=1).mean()),
    )
    for name, config in (policies or POLICIES).items():
        report.runs.append(_run(name, dict(config), contexts, truth, draws, seed, progress))
    return report


def _run(
    name: str,
    config: dict[str, object],
    contexts: np.ndarray[Any, Any],
    truth: np.ndarray[Any, Any],
    draws: np.ndarray[Any, Any],
    seed: int,
    progress: Callable[[int], None] | None,
) -> RegretRun:
    policy = make_policy(config)
    n, k = truth.shape
    stats = np.zeros((k, policy.width(contexts.shape[1])))
    rng = np.random.default_rng([seed, 1])
    chosen = np.empty(n, dtype=np.int64)
    clicks = 0
    began = time.perf_counter()
    for t in range(n):
        x = contexts[t]
        arm, _ = policy.choose(stats, x, rng)
        stats[arm] += policy.pull_delta(x)
        if draws[t] < truth[t, arm]:
            stats[arm] += policy.reward_delta(x, 1.0)
            clicks += 1
        chosen[t] = arm
        if progress is not None and (t + 1) % 1_000 == 0:
            progress(1_000)
    rows = np.arange(n)
    regret = np.cumsum(truth.max(axis=1) - truth[rows, chosen])
    best = float(np.mean(truth[rows, chosen] >= truth.max(axis=1)))
    return RegretRun(name, config, regret, clicks, time.perf_counter() - began, best)


def save_report(report: RegretReport, out: Path) -> list[Path]:
    """Write regret.json and regret.png (cumulative regret of every policy) under `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    summary = out / "regret.json"
    summary.write_text(json.dumps(report.summary(), indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    steps = np.arange(1, report.decisions + 1)
    for run in report.runs:
        ax.plot(steps, run.regret, label=f"{run.policy} ({run.regret[-1]:,.0f})")
    ax.set_xlabel("decisions")
    ax.set_ylabel("cumulative expected regret (clicks)")
    ax.set_title(
        f"Bandit policies on a simulated slot: {len(report.variants)} variants, seed {report.seed}"
    )
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out / "regret.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return [summary, png]


def policy_names(text: str | None) -> Sequence[str]:
    """The policy names of a comma-separated list (all of `POLICIES` when None)."""
    if text is None:
        return list(POLICIES)
    return [name.strip() for name in text.split(",") if name.strip()]
