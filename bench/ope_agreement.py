"""Off-policy estimates, ours beside the Open Bandit Pipeline's, on the Open Bandit Dataset.

Prints a Markdown table for docs/ope.md: for each log (behavior policy/campaign), each
evaluated policy and each estimator, our value, obp's `estimate_policy_value`, their
relative difference, our analytic interval and obp's bootstrap interval. Both sides get
the same arrays: the action, position, reward and propensity columns (read by obp's
`OpenBanditDataset` for obp, by `penchant.experiments.ope_data.read_logs` for us), the
same `action_dist` and the same `estimated_rewards` (Penchant's built-in reward model,
cross-fitted with seed 0).

Needs obp (installed by the Makefile) and ../shared/datasets/open-bandit-dataset-small.
Run: `.venv/bin/python bench/ope_agreement.py` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from penchant.experiments import Estimate, cross_fit_rewards, estimate_all
from penchant.experiments.ope_data import LoggedFeedback, read_logs

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "open-bandit-dataset-small"
LOGS = (("random", "all"), ("random", "men"), ("random", "women"), ("bts", "all"))
POLICIES = ("uniform", "most-clicked", "bernoulli-ts")
NAMES = {"ips": "IPS", "snips": "SNIPS", "dm": "DM", "dr": "DR"}
LEN_LIST = 3


def obp_log(behavior: str, campaign: str) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """obp's arrays of one log, the file row of each, and the number of actions."""
    from obp.dataset import OpenBanditDataset

    class RawOpenBanditDataset(OpenBanditDataset):
        """obp's loader without its feature step (obp 0.4.1's fails under pandas 2)."""

        def pre_process(self) -> None:
            pass

    data = RawOpenBanditDataset(behavior_policy=behavior, campaign=campaign, data_path=DATASET)
    arrays = {
        "action": np.asarray(data.action),
        "position": np.asarray(data.position),
        "reward": np.asarray(data.reward),
        "pscore": np.asarray(data.pscore),
    }
    return arrays, data.data.index.to_numpy(), int(data.n_actions)


def policy(name: str, logs: LoggedFeedback, n_actions: int, campaign: str) -> np.ndarray:
    """An evaluation policy's action_dist, in the file's row order."""
    n = logs.n_rounds
    if name == "uniform":
        return np.full((n, n_actions, LEN_LIST), 1.0 / n_actions)
    if name == "most-clicked":
        dist = np.zeros((n, n_actions, LEN_LIST))
        for k in range(LEN_LIST):
            at = logs.position == k
            clicks = np.bincount(logs.action[at], logs.reward[at], minlength=n_actions)
            dist[:, int(np.argmax(clicks)), k] = 1.0
        return dist
    from obp.policy import BernoulliTS

    bts = BernoulliTS(
        n_actions=n_actions,
        len_list=LEN_LIST,
        is_zozotown_prior=True,
        campaign=campaign,
        random_state=12345,
    )
    return np.asarray(bts.compute_batch_action_dist(n_rounds=n, n_sim=100_000))


def obp_estimates(
    arrays: dict[str, np.ndarray], dist: np.ndarray, q: np.ndarray, n_bootstrap: int, seed: int
) -> dict[str, tuple[float, tuple[float, float]]]:
    """obp's point estimate and bootstrap interval of each estimator."""
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        InverseProbabilityWeighting,
        SelfNormalizedInverseProbabilityWeighting,
    )

    weighted: dict[str, Any] = {"action_dist": dist, **arrays}
    modelled: dict[str, Any] = {"estimated_rewards_by_reg_model": q}
    calls: dict[str, tuple[Any, dict[str, Any]]] = {
        "ips": (InverseProbabilityWeighting(), weighted),
        "snips": (SelfNormalizedInverseProbabilityWeighting(), weighted),
        "dm": (DirectMethod(), {"action_dist": dist, "position": arrays["position"], **modelled}),
        "dr": (DoublyRobust(), {**weighted, **modelled}),
    }
    out = {}
    for name, (estimator, kwargs) in calls.items():
        value = float(estimator.estimate_policy_value(**kwargs))
        interval = estimator.estimate_interval(
            **kwargs, n_bootstrap_samples=n_bootstrap, random_state=seed
        )
        low, high = (float(v) for k, v in interval.items() if k != "mean")
        out[name] = (value, (low, high))
    return out


def rows_for(
    behavior: str, campaign: str, n_bootstrap: int, seed: int
) -> tuple[list[str], dict[str, float]]:
    """Markdown rows of one log, and the largest relative difference per estimator."""
    logs = read_logs(DATASET / behavior / campaign / f"{campaign}.csv")
    arrays, order, n_actions = obp_log(behavior, campaign)
    q = cross_fit_rewards(
        logs.context,
        logs.action,
        logs.position,
        logs.reward,
        n_actions=n_actions,
        len_list=LEN_LIST,
        rng=np.random.default_rng(seed),
    )
    rows, worst = [], dict.fromkeys(NAMES, 0.0)
    for name in POLICIES:
        dist = policy(name, logs, n_actions, campaign)
        ours: dict[str, Estimate] = estimate_all(
            reward=logs.reward,
            action=logs.action,
            pscore=logs.pscore,
            action_dist=dist,
            position=logs.position,
            estimated_rewards=q,
        )
        theirs = obp_estimates(arrays, dist[order], q[order], n_bootstrap, seed)
        for estimator, label in NAMES.items():
            mine, (value, (low, high)) = ours[estimator], theirs[estimator]
            relative = abs(mine.value - value) / abs(value) if value else abs(mine.value)
            worst[estimator] = max(worst[estimator], relative)
            rows.append(
                f"| {label} | {name} | {behavior}/{campaign} | {mine.value:.6f} | {value:.6f} "
                f"| {relative:.1e} | [{mine.ci[0]:.6f}, {mine.ci[1]:.6f}] "
                f"| [{low:.6f}, {high:.6f}] |"
            )
    return rows, worst


def machine() -> str:
    """One line on what the table was computed on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown cpu",
    )
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, load {load}"


def main() -> None:
    """Print the agreement table and the on-policy click rates of the BTS logs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=1000, help="obp's bootstrap samples")
    parser.add_argument("--seed", type=int, default=0, help="model folds and obp's bootstrap")
    args = parser.parse_args()
    if not DATASET.is_dir():
        sys.exit(f"{DATASET} is missing: this benchmark needs ../shared/datasets")
    import obp

    started = time.perf_counter()
    print(
        f"obp {obp.__version__}; {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print()
    print(
        "| estimator | policy evaluated | log | ours | obp | relative difference "
        "| our 95% interval (analytic) | obp 95% interval (bootstrap) |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | --- | --- |")
    worst = dict.fromkeys(NAMES, 0.0)
    for behavior, campaign in LOGS:
        rows, largest = rows_for(behavior, campaign, args.bootstrap, args.seed)
        print("\n".join(rows))
        worst = {k: max(worst[k], largest[k]) for k in NAMES}
    print()
    print(
        "Largest relative difference: "
        + ", ".join(f"{NAMES[k]} {v:.1e}" for k, v in worst.items())
        + f". Took {time.perf_counter() - started:.0f} s."
    )
    for campaign in ("all", "men", "women"):
        clicks = read_logs(DATASET / "bts" / campaign / f"{campaign}.csv").reward
        print(
            f"On-policy click rate of the BTS log, {campaign}: {clicks.mean():.6f} "
            f"(the true value of bernoulli-ts on random/{campaign}, up to the log's noise)."
        )


if __name__ == "__main__":
    main()
