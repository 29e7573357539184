"""Model benchmark: penchant's models beside implicit, LensKit and cornac, on the same splits.

Each dataset's ratings all count as interactions of weight 1, split by each protocol of
`--protocols`: `leave-last-out` (each user's newest item is the test) and `holdout` (20% of
each user's items at random), with `split(data, protocol, test_fraction=0.2, rng=seed)`.
A `penchant auto` row runs what `penchant evaluate --models auto` runs: everything chosen on a
validation split carved from the training pairs, then refitted and judged once.

Every (dataset, library, algorithm) fits and ranks in a fresh process
(`bench/models_worker.py`), `--repeat` times (`auto` once: its search is long), so its peak
RSS is its own; each library trains and ranks with its own code, and the top-50 lists, mapped
into penchant's item codes, are scored here by penchant's `ranking_metrics` over the users
with test pairs. Peers get penchant's hyperparameters, translated where
their definitions differ (the notes in the output say where and how).

    .venv/bin/python bench/models_bench.py                       # both datasets, 3 runs each
    .venv/bin/python bench/models_bench.py --datasets ml-100k --repeat 1 --only ease,itemknn

Results go to bench/out/models.json; Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import models_worker  # scripts beside this one, not a package
import peers
from penchant.evaluation.metrics import ranking_metrics

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
WORKER = ROOT / "bench" / "models_worker.py"
KS = (10, 20)

#: The settings every library gets (translated to its own names by `peer_specs`).
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    # penchant's defaults, except alpha 2 (LensKit's weight, alpha - 1, must be positive)
    "ials": {"factors": 64, "regularization": 10.0, "alpha": 2.0, "epochs": 15},
    "bpr": {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "epochs": 100},
    # the neighbourhood LensKit implements; penchant's default (`target`) is a row of its own
    "itemknn": {
        "k": 50,
        "shrinkage": 0.0,
        "min_similarity": 1e-6,
        "weighted": False,
        "neighbourhood": "history",
    },
    "ease": {"regularization": 500.0},
}
_SEEDED = {"ials", "bpr"}

SAME_CODE = (
    "the same code as penchant's {0} (penchant trains with implicit): only the wrapper differs"
)
NOTES = {
    "implicit als": SAME_CODE.format("ials"),
    "implicit bpr": SAME_CODE.format("bpr"),
    "lenskit implicitmf": (
        "confidence of an interaction is 1 + weight where implicit's is alpha, so weight = "
        "alpha - 1; exact Cholesky solves where implicit runs 3 conjugate-gradient steps per "
        "row; initial factors (0.01 z)^2, z standard normal, where implicit draws U[0, 0.01); "
        "at query time LensKit re-solves each user's factors from the history against the "
        "final item factors, where penchant and implicit keep the last epoch's user factors"
    ),
    "lenskit itemknn": (
        "same cosine similarities and the same k kept per item; LensKit adds a history "
        "item's similarity to the items of that item's k-list (Deshpande and Karypis), which "
        "is penchant's neighbourhood='history'; penchant's default, 'target', adds it to an "
        "item whose own k-list holds the history item; max_nbrs = longest history, so no "
        "per-user cut"
    ),
    "cornac ease": (
        "posB=False: cornac's default posB=True (its docstring says False) zeroes every "
        "negative weight of B; False is the plain closed form; float64 inverse, like penchant"
    ),
    "lenskit ease": "float32 Cholesky inverse (torch) where penchant and cornac invert in float64",
}


@dataclass(frozen=True)
class Spec:
    """One row of the benchmark: a library's algorithm with its own parameters.

    Attributes:
        label: the row's name, unique per dataset (`penchant ials`, `implicit als`...).
        library: a key of `peers.RUNNERS`.
        algorithm: the library's own name of the algorithm.
        params: the library's own parameters.
        matches: the penchant algorithm it is compared with.
        ours: penchant's own row (compared against every peer with the same `matches`).
        note: how the peer's definition differs from penchant's.
    """

    label: str
    library: str
    algorithm: str
    params: dict[str, Any]
    matches: str
    ours: bool = False
    note: str = ""


#: More rows of ours for a dataset (e.g. a tuned `--models auto` result): dataset -> specs.
ExtraSpecs = Callable[[str], Sequence[Spec]]


def our_spec(algorithm: str, params: dict[str, Any], seed: int, label: str = "") -> Spec:
    """Penchant's `algorithm` with `params` (seeded when the model takes a seed)."""
    seeded = {**params, "rng": seed} if algorithm in _SEEDED else dict(params)
    return Spec(label or f"penchant {algorithm}", "penchant", algorithm, seeded, algorithm, True)


def peer_specs(algorithm: str, p: dict[str, Any], seed: int) -> list[Spec]:
    """The peers of penchant's `algorithm`, given penchant's parameters `p`."""

    def peer(library: str, name: str, params: dict[str, Any]) -> Spec:
        label = f"{library} {name}"
        return Spec(label, library, name, params, algorithm, note=NOTES[label])

    if algorithm == "ials":
        common = {"factors": p["factors"], "regularization": p["regularization"]}
        out = [
            peer("implicit", "als", {**common, "alpha": p["alpha"], "iterations": p["epochs"],
                                     "random_state": seed, "num_threads": 0}),
        ]  # fmt: skip
        if p["alpha"] > 1:  # LensKit's weight must be positive
            out.append(peer("lenskit", "implicitmf", {
                "embedding_size": p["factors"], "regularization": p["regularization"],
                "weight": p["alpha"] - 1, "epochs": p["epochs"], "use_ratings": False,
                "rng": seed}))  # fmt: skip
        return out
    if algorithm == "bpr":
        return [
            peer("implicit", "bpr", {
                "factors": p["factors"], "learning_rate": p["learning_rate"],
                "regularization": p["regularization"], "iterations": p["epochs"],
                "random_state": seed, "num_threads": 0}),
        ]  # fmt: skip
    if algorithm == "itemknn":
        if p["shrinkage"] or p["weighted"]:
            return []  # LensKit's implicit item-kNN has neither
        return [
            peer("lenskit", "itemknn", {
                "feedback": "implicit", "save_nbrs": p["k"], "min_nbrs": 1,
                "max_nbrs": peers.LONGEST_HISTORY, "min_sim": p["min_similarity"]}),
        ]  # fmt: skip
    if algorithm == "ease":
        lam = p["regularization"]
        return [
            peer("cornac", "ease", {"lamb": lam, "posB": False, "verbose": False}),
            peer("lenskit", "ease", {"regularization": lam}),
        ]
    return []


#: Each peer as it ships: its own default hyperparameters (only the seed is set).
DEFAULTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("implicit", "als", {"random_state": 0}),
    ("implicit", "bpr", {"random_state": 0}),
    ("lenskit", "implicitmf", {"rng": 0}),
    ("lenskit", "itemknn", {"feedback": "implicit"}),
    ("cornac", "ease", {"verbose": False}),
)


def default_specs() -> list[Spec]:
    """The peers at their own defaults: what a user of each library gets without tuning."""
    return [
        Spec(f"{library} {name} (defaults)", library, name, dict(params), "defaults")
        for library, name, params in DEFAULTS
    ]


def specs(
    seed: int, only: Sequence[str], auto_trials: int = 0, defaults: bool = False
) -> list[Spec]:
    """Ours and the peers of each algorithm in `only`, `auto` when it has trials, and the
    peers at their own defaults when asked."""
    out: list[Spec] = default_specs() if defaults else []
    for algorithm in only:
        params = HYPERPARAMETERS[algorithm]
        if algorithm == "itemknn":
            default = {**params, "neighbourhood": "target"}
            out.append(our_spec(algorithm, default, seed, label="penchant itemknn (target)"))
        out.append(our_spec(algorithm, params, seed))
        out.extend(peer_specs(algorithm, params, seed))
    if auto_trials > 0:
        out.append(Spec("penchant auto", "penchant", "auto", {"trials": auto_trials}, "auto", True))
    return out


@dataclass
class Row:
    """The runs of one spec on one dataset."""

    spec: Spec
    runs: list[dict[str, Any]] = field(default_factory=list)
    codes: np.ndarray[Any, Any] | None = None  # first run's lists
    identical: bool = True  # every run gave the same lists
    error: str = ""


def thread_env(threads: int) -> dict[str, str]:
    """Every library's thread pools at `threads` (implicit's BLAS is cut to 1 around fit)."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "LK_NUM_THREADS": n,
        "LK_NUM_BACKEND_THREADS": n,
        "LK_NUM_PROCS": "1",
    }


def run_once(
    dataset: str, protocol: str, spec: Spec, seed: int, env: dict[str, str], row: Row
) -> None:
    """One fresh-process run of a spec, added to its row (or the row's error set)."""
    payload = json.dumps({"library": spec.library, "algorithm": spec.algorithm,
                          "params": spec.params})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(WORKER), "--dataset", dataset, "--spec", payload,
                   "--seed", str(seed), "--protocol", protocol, "--out", tmp]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            row.error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            print(f"{dataset} {spec.label} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return
        report = json.loads(done.stdout.strip().splitlines()[-1])
        report["codes"] = np.load(Path(tmp) / "codes.npy", allow_pickle=False)
        report["users"] = np.load(Path(tmp) / "users.npy", allow_pickle=False)
    report["run"] = len(row.runs) + 1
    if row.codes is None:
        row.codes = report["codes"]
    elif not np.array_equal(report["codes"], row.codes):
        row.identical = False
    row.runs.append(report)


def score(row: Row, users: np.ndarray[Any, Any], relevant: Any) -> None:
    """Add NDCG@10 and Recall@20 (means over test users) to each run; drop the lists."""
    for run in row.runs:
        if not np.array_equal(run.pop("users"), users):
            raise RuntimeError(f"{row.spec.label}: the worker evaluated other users")
        metrics = ranking_metrics(run.pop("codes"), relevant, KS)
        run["ndcg@10"] = float(metrics["ndcg@10"].mean())
        run["recall@20"] = float(metrics["recall@20"].mean())


def summary(row: Row) -> dict[str, Any]:
    """The row's median fit time, accuracy (mean over runs) and peak memory."""
    out: dict[str, Any] = {
        "label": row.spec.label, "library": row.spec.library, "algorithm": row.spec.algorithm,
        "matches": row.spec.matches, "params": row.spec.params, "note": row.spec.note,
        "error": row.error or None,
    }  # fmt: skip
    if not row.runs:
        return out
    fits = sorted(r["fit_seconds"] for r in row.runs)
    ndcg = [r["ndcg@10"] for r in row.runs]
    return {
        **out,
        "runs": len(row.runs),
        "ndcg@10": statistics.fmean(ndcg),
        "ndcg@10_range": [min(ndcg), max(ndcg)],
        "recall@20": statistics.fmean(r["recall@20"] for r in row.runs),
        "fit_seconds_median": statistics.median(fits),
        "fit_seconds_every_run": fits,
        "recommend_seconds_median": statistics.median(r["recommend_seconds"] for r in row.runs),
        "prepare_seconds_median": statistics.median(r["prepare_seconds"] for r in row.runs),
        "peak_rss_mib": round(max(r["peak_rss_kib"] for r in row.runs) / 1024, 1),
        "rss_after_load_mib": round(max(r["rss_after_load_kib"] for r in row.runs) / 1024, 1),
        "identical_lists_every_run": row.identical,
        "info": row.runs[0]["info"],
    }


def pairs(rows: list[Row], summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours against each peer of the same algorithm: ratios and top-10 agreement."""
    out = []
    for ours in (r for r in rows if r.spec.ours and r.runs):
        for peer in (r for r in rows if not r.spec.ours and r.spec.matches == ours.spec.matches):
            if not peer.runs:
                continue
            a, b = summaries[ours.spec.label], summaries[peer.spec.label]
            assert ours.codes is not None and peer.codes is not None
            out.append({
                "ours": ours.spec.label, "peer": peer.spec.label,
                "ndcg@10_ratio": a["ndcg@10"] / b["ndcg@10"],
                "recall@20_ratio": a["recall@20"] / b["recall@20"],
                "fit_time_ratio": a["fit_seconds_median"] / b["fit_seconds_median"],
                "top10_overlap": overlap(ours.codes[:, :10], peer.codes[:, :10]),
            })  # fmt: skip
    return out


def overlap(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Mean share of a user's top-k (ours) that the other list also has in its top-k."""
    shared = [len(np.intersect1d(x[x >= 0], y[y >= 0])) for x, y in zip(a, b, strict=True)]
    return float(np.mean(shared)) / a.shape[1]


def benchmark(
    datasets: Sequence[str],
    *,
    repeat: int,
    seed: int,
    only: Sequence[str],
    threads: int,
    protocols: Sequence[str] = ("leave-last-out", "holdout"),
    auto_trials: int = 0,
    defaults: bool = False,
    extra_ours: ExtraSpecs | None = None,
) -> dict[str, Any]:
    """Run every spec on every dataset that is present; the results as JSON-ready dicts."""
    env = {**os.environ, **thread_env(threads)}
    results: dict[str, Any] = {}
    for name, protocol in [(n, p) for n in datasets for p in protocols]:
        path = models_worker.dataset_file(name)
        if not path.exists():
            print(f"skipping {name}: {os.path.relpath(path, ROOT)} not found", file=sys.stderr)
            continue
        s = models_worker.load_split(name, seed, protocol)
        users = models_worker.test_users(s.test)
        relevant = s.test.matrix[users]
        todo = specs(seed, only, auto_trials, defaults)
        todo += list(extra_ours(name) if extra_ours else [])
        rows = [Row(spec) for spec in todo]
        # rounds of one run of every spec, so that a change in the machine's load falls on
        # every library alike rather than on whichever ran at the time
        for _ in range(repeat):
            for row in rows:
                if not row.error and not (row.spec.algorithm == "auto" and row.runs):
                    run_once(name, protocol, row.spec, seed, env, row)  # auto: one run
        for row in rows:
            score(row, users, relevant)
            print(json.dumps({"dataset": name, "protocol": protocol, **summary(row)}), flush=True)
        summaries = {r.spec.label: summary(r) for r in rows}
        results[f"{name} {protocol}"] = {
            "split": {
                "dataset": name,
                "protocol": protocol,
                "users": s.train.n_users,
                "items": s.train.n_items,
                **s.info,
            },
            "best_peer": best_peer(list(summaries.values())),
            "best_peer_at_defaults": best_peer(list(summaries.values()), defaults=True),
            "rows": list(summaries.values()),
            "runs": [{"label": r.spec.label, **run} for r in rows for run in r.runs],
            "pairs": pairs(rows, summaries),
        }
    return results


def best_peer(rows: list[dict[str, Any]], *, defaults: bool = False) -> dict[str, Any] | None:
    """The peer row with the highest NDCG@10, and how `penchant auto` compares with it.

    `defaults` picks among the peers at their own defaults; otherwise among the peers given
    penchant's settings.
    """
    peers_ = [
        r
        for r in rows
        if r["library"] != "penchant"
        and not r["error"]
        and "runs" in r
        and (r["matches"] == "defaults") == defaults
    ]
    if not peers_:
        return None
    best = max(peers_, key=lambda r: r["ndcg@10"])
    out = {"label": best["label"], "ndcg@10": best["ndcg@10"]}
    auto = next((r for r in rows if r["algorithm"] == "auto" and "runs" in r), None)
    if auto is not None:
        out["auto_ndcg@10"] = auto["ndcg@10"]
        out["auto_over_best_peer"] = auto["ndcg@10"] / best["ndcg@10"]
    return out


def markdown(name: str, result: dict[str, Any]) -> str:
    """One dataset's rows and pairs as Markdown tables."""
    sp = result["split"]
    lines = [
        f"### {name}: {sp['users']:,} users, {sp['items']:,} items, {sp['train_pairs']:,} "
        f"training and {sp['test_pairs']:,} test pairs, {sp['test_users']:,} test users",
        "",
        "| model | NDCG@10 | Recall@20 | fit s (median) | every run | recommend s | "
        "peak RSS MiB | before fit MiB | same lists every run |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in result["rows"]:
        if r["error"]:
            lines.append(f"| {r['label']} | failed: {r['error']} | | | | | | | |")
            continue
        lo, hi = r["ndcg@10_range"]
        same = "yes" if r["identical_lists_every_run"] else f"no (NDCG@10 {lo:.4f}..{hi:.4f})"
        every = ", ".join(f"{t:.3f}" for t in r["fit_seconds_every_run"])
        lines.append(
            f"| {r['label']} | {r['ndcg@10']:.4f} | {r['recall@20']:.4f} | "
            f"{r['fit_seconds_median']:.3f} | {every} | {r['recommend_seconds_median']:.2f} | "
            f"{r['peak_rss_mib']} | {r['rss_after_load_mib']} | {same} |"
        )
    lines += [
        "",
        "| ours | peer | NDCG@10 ours/peer | Recall@20 ours/peer | fit time ours/peer | "
        "top-10 overlap |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {p['ours']} | {p['peer']} | {p['ndcg@10_ratio']:.3f} | {p['recall@20_ratio']:.3f} | "
        f"{p['fit_time_ratio']:.2f} | {p['top10_overlap']:.3f} |"
        for p in result["pairs"]
    ]
    for key, which in (("best_peer", "given penchant's settings"),
                       ("best_peer_at_defaults", "at its own defaults")):  # fmt: skip
        best = result.get(key)
        if best and "auto_over_best_peer" in best:
            lines += [
                "",
                f"penchant auto: NDCG@10 {best['auto_ndcg@10']:.4f} against the best peer "
                f"{which}, {best['label']}, {best['ndcg@10']:.4f}: ratio "
                f"{best['auto_over_best_peer']:.3f}.",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None, extra_ours: ExtraSpecs | None = None) -> dict[str, Any]:
    """Parse the command line, run, print Markdown and write bench/out/models.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(models_worker.DATASETS))
    parser.add_argument("--repeat", type=int, default=3, help="fresh-process runs of each")
    parser.add_argument("--seed", type=int, default=0, help="split and model seed")
    parser.add_argument("--only", default=",".join(HYPERPARAMETERS), help="penchant algorithms")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--protocols", default="leave-last-out,holdout", help="split protocols, comma-separated"
    )
    parser.add_argument(
        "--auto-trials", type=int, default=20, help="trials per model of `auto` (0: no auto row)"
    )
    parser.add_argument(
        "--defaults", action="store_true", help="also run each peer at its own defaults"
    )
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    only = [a for a in args.only.split(",") if a]
    unknown = sorted(set(datasets) - set(models_worker.DATASETS)) + sorted(
        set(only) - set(HYPERPARAMETERS)
    )
    if unknown:
        parser.error(f"unknown dataset or algorithm: {', '.join(unknown)}")
    import run  # bench/run.py: what the numbers were measured on

    info = {**run.machine(), **source_state()}
    started = time.perf_counter()
    protocols = [p for p in args.protocols.split(",") if p]
    results = benchmark(datasets, repeat=args.repeat, seed=args.seed, only=only,
                        threads=args.threads, protocols=protocols,
                        auto_trials=args.auto_trials, defaults=args.defaults,
                        extra_ours=extra_ours)  # fmt: skip
    wall = time.perf_counter() - started
    info["load average after"] = Path("/proc/loadavg").read_text().strip()
    if source_state() != {k: info[k] for k in ("commit", "uncommitted in src", "src sha256")}:
        info["warning"] = "src/ changed during the run: rows may come from different code"
        print(f"warning: {info['warning']}", file=sys.stderr)
    document = {
        "machine": info, "command": " ".join(["bench/models_bench.py", *(argv or sys.argv[1:])]),
        "wall_seconds": round(wall, 1), "repeat": args.repeat, "seed": args.seed,
        "threads": thread_env(args.threads), "hyperparameters": HYPERPARAMETERS,
        "datasets": results,
    }  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "models.json").write_text(json.dumps(document, indent=2, default=_jsonable))
    print()
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- threads: {args.threads} for every library's training (implicit: num_threads=0, "
          f"BLAS cut to 1 around fit); wall time of the whole run: {wall:.0f} s")  # fmt: skip
    for name, result in results.items():
        print()
        print(markdown(name, result))
    print()
    shown = {r["label"] for result in results.values() for r in result["rows"]}
    print("Where a peer's definition differs from penchant's:")
    for label, note in NOTES.items():
        if label in shown:
            print(f"- {label}: {note}")
    return document


def source_state() -> dict[str, str]:
    """The commit measured, and whether src/ had uncommitted changes (others edit it)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout

    dirty = git("status", "--porcelain", "--", "src").splitlines()
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(path.read_bytes())
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted in src": ", ".join(line[3:] for line in dirty) or "none",
        "src sha256": digest.hexdigest()[:16],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Spec):
        return asdict(value)
    raise TypeError(f"not JSON: {type(value)}")


if __name__ == "__main__":
    main()
