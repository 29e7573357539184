"""One model-benchmark run in a fresh process: load, split, fit, rank; JSON on stdout.

`bench/models_bench.py` starts one of these per (dataset, library, algorithm) and run, so
that each run's peak RSS is its own. The recommended item codes (in penchant's item
vocabulary) go to `--out` as `codes.npy`, with the evaluated user codes as `users.npy`.

    .venv/bin/python bench/models_worker.py --dataset ml-100k --seed 0 --out /tmp/run \
        --spec '{"library": "penchant", "algorithm": "ease", "params": {"regularization": 500}}'
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # a script beside this one, not a package
from penchant.data import Dataset, Split, build_dataset, split
from penchant.ingest.bulk import read_events
from penchant.ingest.formats import get_preset
from penchant.schema import EventVocabulary

ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = ROOT.parent / "shared" / "datasets"
#: Benchmark datasets: name -> (folder under ../shared/datasets, penchant format preset).
DATASETS = {
    "ml-100k": ("movielens-100k", "movielens-100k"),
    "ml-latest-small": ("movielens-latest-small", "movielens"),
}
TEST_FRACTION = 0.2
LIST_LENGTH = 50


def dataset_file(name: str) -> Path:
    """The event file of a benchmark dataset (it may be absent)."""
    folder, preset = DATASETS[name]
    events_file = get_preset(preset).events_file
    assert events_file is not None
    return DATASETS_DIR / folder / events_file


def load_split(name: str, seed: int, protocol: str = "holdout") -> Split:
    """The dataset's every rating as an interaction of weight 1, split by `protocol`.

    `holdout` holds out 20% of each user's items at random; `leave-last-out` each user's
    newest item.
    """
    preset = get_preset(DATASETS[name][1])
    with tempfile.TemporaryDirectory() as tmp:
        events = read_events(
            dataset_file(name),
            preset.events,
            vocabulary=EventVocabulary(),
            rejects=Path(tmp) / "rejects.jsonl",
        )
        data = build_dataset(events)
    return split(data, protocol, test_fraction=TEST_FRACTION, rng=seed)


def test_users(test: Dataset) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The user codes that have test pairs, ascending: the users every run is judged on."""
    return np.unique(test.users).astype(np.int64)


def run_auto(
    s: Split, protocol: str, seed: int, params: dict[str, Any], users: np.ndarray[Any, Any]
) -> peers.Result:
    """`penchant evaluate --models auto` on this split: choose on validation, refit, rank.

    The validation split is the training pairs split again by the same protocol (seed + 1),
    as `penchant evaluate` does; the test pairs are never seen. `fit_seconds` is the refit
    of the chosen configuration; the search itself is `info.tune_seconds`.
    """
    from penchant.evaluation.tuning import auto_select

    started = time.perf_counter()
    validation = split(s.train, protocol, test_fraction=TEST_FRACTION, rng=seed + 1)
    choice = auto_select(validation, n_trials=int(params.get("trials", 20)), rng=seed)
    tuned = time.perf_counter()
    model = choice.build(rng=seed)
    weighted = s.with_recency(choice.recency_half_life_days)
    weighted.train.matrix  # noqa: B018 (not part of the fit time, as for the other rows)
    fit_started = time.perf_counter()
    model.fit(weighted.train)
    fitted = time.perf_counter()
    codes, _ = model.rank(users, k=LIST_LENGTH)
    done = time.perf_counter()
    return peers.Result(
        codes=codes,
        fit_seconds=fitted - fit_started,
        recommend_seconds=done - fitted,
        info={
            "chosen": choice.description,
            "recency_half_life_days": choice.recency_half_life_days,
            "validation": {n: round(v, 4) for n, v in choice.candidates.items()},
            "tuned": {n: t.params for n, t in choice.tuned.items()},
            "tune_seconds": round(tuned - started, 1),
        },
    )


def peak_rss_kib() -> int:
    """This process's peak resident set so far (ru_maxrss is KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str] | None = None) -> None:
    """Run one spec on one dataset and print its numbers as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(DATASETS), required=True)
    parser.add_argument("--spec", required=True, help="JSON: library, algorithm, params")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--protocol", default="holdout", help="holdout or leave-last-out")
    parser.add_argument("--out", type=Path, required=True, help="folder for codes.npy")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    started = time.perf_counter()
    s = load_split(args.dataset, args.seed, args.protocol)
    users = test_users(s.test)
    train = s.train
    train.matrix  # noqa: B018 (built before any clock starts, for every library alike)
    load_seconds = time.perf_counter() - started
    rss_loaded = peak_rss_kib()
    if spec["algorithm"] == "auto":
        result = run_auto(s, args.protocol, args.seed, spec["params"], users)
    else:
        result = peers.run(
            spec["library"], spec["algorithm"], spec["params"], train, users, LIST_LENGTH
        )
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "codes.npy", result.codes, allow_pickle=False)
    np.save(args.out / "users.npy", users, allow_pickle=False)
    report = {
        "load_seconds": round(load_seconds, 3),
        "prepare_seconds": round(result.prepare_seconds, 4),
        "fit_seconds": round(result.fit_seconds, 4),
        "recommend_seconds": round(result.recommend_seconds, 4),
        "peak_rss_kib": peak_rss_kib(),
        "rss_after_load_kib": rss_loaded,
        "info": result.info,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
