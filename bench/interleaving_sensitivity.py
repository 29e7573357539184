"""Users needed to detect one ranking-quality gap: team-draft interleaving against A/B on CTR.

A simulated surface: each user has a click probability for each of 30 items (Beta(0.5, 4):
few items attract); a ranker sorts the items by that probability plus Gaussian noise, so
less noise is a better ranker, and shows the top 10. Users follow a cascade: they read from
the top, click an item with its probability and stop, or else read on with probability
`patience`. One session per user.

For each world (patience, noise of A, noise of B) a pilot measures the per-user rates: the
CTR of each ranker (A/B) and how often each team wins an interleaved impression. From them,
the users needed for 80% power at a two-sided 5% level: for A/B, a two-proportion test with
users split in halves; for interleaving, the sign test on decided impressions (the decided
share scales it to users). A Monte Carlo check then runs `--replicates` experiments at each
computed size with the real tests (chi-square on the 2x2 table, `penchant.experiments.
preference`) and reports the share that detected B's advantage, which should be near 0.8.

    .venv/bin/python bench/interleaving_sensitivity.py  # about 3.5 minutes on 2 cores

`--replicates 0` skips the power check; smaller pilots make the sizes noisy (a 50,000-impression
pilot was off by a quarter for the smallest gap).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import numpy.typing as npt
from scipy import stats

from penchant.experiments import credit, preference, team_draft
from penchant.testing.cascade import cascade_users, first_click, noisy_ranking

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
M, K = 30, 10
NAMES = np.array([f"d{i}" for i in range(M)])
INDEX = {name: i for i, name in enumerate(NAMES.tolist())}
#: (patience, noise of A, noise of B): B is the better ranker in every world.
WORLDS = [(patience, noise_a, 0.1) for patience in (0.5, 0.8, 0.95) for noise_a in (0.3, 0.2, 0.15)]
_CHUNK = 200_000
Z = float(stats.norm.ppf(0.975) + stats.norm.ppf(0.8))


def users(n: int, rng: np.random.Generator) -> FloatArray:
    """Click probabilities, shape (n, M)."""
    return cascade_users(n, M, rng)


def ab_clicked(
    n: int, noise: float, patience: float, rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    """Whether each of n new users clicked when shown one ranker's top K."""
    attraction = users(n, rng)
    shown = np.take_along_axis(attraction, noisy_ranking(attraction, noise, rng)[:, :K], axis=1)
    return first_click(shown, patience, rng) >= 0


def interleaved(
    n: int, noise_a: float, noise_b: float, patience: float, rng: np.random.Generator
) -> IntArray:
    """The credit (+1 A, -1 B, 0 tie) of one interleaved impression for each of n new users."""
    attraction = users(n, rng)
    ranked_a, ranked_b = (
        noisy_ranking(attraction, noise_a, rng),
        noisy_ranking(attraction, noise_b, rng),
    )
    drafts = [
        team_draft(NAMES[ra].tolist(), NAMES[rb].tolist(), K, rng)
        for ra, rb in zip(ranked_a, ranked_b, strict=True)
    ]
    columns = np.array([[INDEX[item] for item in d.items] for d in drafts])
    clicked = first_click(np.take_along_axis(attraction, columns, axis=1), patience, rng)
    return np.array(
        [credit(d, [c] if c >= 0 else []) for d, c in zip(drafts, clicked, strict=True)]
    )


def ctr(n: int, noise: float, patience: float, rng: np.random.Generator) -> float:
    """One ranker's CTR over n users, simulated in chunks of bounded memory."""
    sizes = [min(_CHUNK, n - start) for start in range(0, n, _CHUNK)]
    return sum(int(ab_clicked(size, noise, patience, rng).sum()) for size in sizes) / n


def ab_users(ctr_a: float, ctr_b: float) -> int:
    """Total users (two equal halves) for 80% power of the two-proportion test."""
    per_arm = Z**2 * (ctr_a * (1 - ctr_a) + ctr_b * (1 - ctr_b)) / (ctr_b - ctr_a) ** 2
    return int(np.ceil(2 * per_arm))


def interleaving_users(win_a: float, win_b: float) -> int:
    """Users for 80% power of the sign test on decided impressions."""
    decided = win_a + win_b
    share = win_b / decided
    z_a, z_b = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    needed = ((z_a * 0.5 + z_b * np.sqrt(share * (1 - share))) / (share - 0.5)) ** 2
    return int(np.ceil(needed / decided))


def ab_power(
    n: int, noise_a: float, noise_b: float, patience: float, reps: int, rng: np.random.Generator
) -> float:
    """Share of `reps` A/B tests of n users that find B's CTR higher at the 5% level."""
    half, hits = n // 2, 0
    for _ in range(reps):
        a = int(ab_clicked(half, noise_a, patience, rng).sum())
        b = int(ab_clicked(half, noise_b, patience, rng).sum())
        table = [[a, half - a], [b, half - b]]
        hits += b > a and stats.chi2_contingency(table, correction=False).pvalue < 0.05
    return hits / reps


def interleaving_power(
    n: int, noise_a: float, noise_b: float, patience: float, reps: int, rng: np.random.Generator
) -> float:
    """Share of `reps` interleaving experiments of n users that find B preferred at 5%."""
    hits = 0
    for _ in range(reps):
        result = preference(interleaved(n, noise_a, noise_b, patience, rng).tolist())
        hits += result.significant and result.delta > 0
    return hits / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pilot", type=int, default=200_000, help="interleaved pilot impressions")
    parser.add_argument("--ab-pilot", type=int, default=2_000_000, help="A/B pilot users per arm")
    parser.add_argument("--replicates", type=int, default=100, help="0 skips the power check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        "| patience | noise A | noise B | CTR A | CTR B | A wins | B wins | ties "
        "| users A/B | users interleaving | ratio | power A/B | power interleaving |"
    )
    print("|" + "---:|" * 13)
    started = time.perf_counter()
    for patience, noise_a, noise_b in WORLDS:
        ctr_a = ctr(args.ab_pilot, noise_a, patience, rng)
        ctr_b = ctr(args.ab_pilot, noise_b, patience, rng)
        wins = interleaved(args.pilot, noise_a, noise_b, patience, rng)
        win_a, win_b = float(np.mean(wins == 1)), float(np.mean(wins == -1))
        n_ab, n_il = ab_users(ctr_a, ctr_b), interleaving_users(win_a, win_b)
        if args.replicates:
            reps = args.replicates
            power_ab = f"{ab_power(n_ab, noise_a, noise_b, patience, reps, rng):.2f}"
            power_il = f"{interleaving_power(n_il, noise_a, noise_b, patience, reps, rng):.2f}"
        else:
            power_ab = power_il = "-"
        print(
            f"| {patience} | {noise_a} | {noise_b} | {ctr_a:.3f} | {ctr_b:.3f} | {win_a:.3f} "
            f"| {win_b:.3f} | {1 - win_a - win_b:.3f} | {n_ab:,} | {n_il:,} | {n_ab / n_il:.1f} "
            f"| {power_ab} | {power_il} |",
            flush=True,
        )
    print(
        f"\npilot: {args.ab_pilot:,} users per A/B arm, {args.pilot:,} interleaved impressions; "
        f"{args.replicates} replicates per power check; seed {args.seed}; "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
