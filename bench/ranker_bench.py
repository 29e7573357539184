"""The serving pipeline with the learned ranker: latency per request, in process.

MovieLens latest-small with its items' texts. The hybrid (members ials, itemknn, popular,
content, LightGBM LambdaMART over their candidates) is trained on every pair, then an
`Engine` serves a surface whose scoring is the ranker: each request computes every
member's scores, the features of about 200 candidates (100 per member, their union) and
the ranker's predictions, then filters, rules and explanations. Requests go one after
another for random known users, then for the same users as anonymous sessions of their
10 latest items (folded in), each at its own time and device; p50/p99 are per request.
Requests run with one BLAS and OpenMP thread, as the service pins them
(`penchant.service.app.pin_threads`).

    .venv/bin/python bench/ranker_bench.py [--requests 2000] [--out bench/out/ranker.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from penchant.data import Dataset
from penchant.jobs.evaluate import EvaluateOptions, read_dataset
from penchant.models import Hybrid, ImplicitALS, ItemKNN, Popular
from penchant.ranking import Engine, RankingRequest
from penchant.ranking.state import Activity
from penchant.schema import Item
from penchant.service.app import pin_threads

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "movielens-latest-small"
SURFACE = [
    {"stage": "ranker", "model": "hybrid", "n": 200, "weight": 1.0},
    {"stage": "score"},
    {"stage": "filter"},
    {"stage": "rules"},
    {"stage": "explain"},
]


def movielens() -> tuple[Dataset, list[Item]]:
    """The interactions with the items' texts, and the catalog as items."""
    options = EvaluateOptions(
        dataset=DATASET, output=Path("."), format="movielens", models=["content"]
    )
    data, _, texts = read_dataset(options)
    assert texts is not None
    return data, [Item(id=i, title=t[:1000]) for i, t in texts.texts.items()]


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def run(requests: int) -> dict[str, Any]:
    data, items = movielens()
    began = time.perf_counter()
    hybrid = Hybrid(rng=0).fit(data)
    fit_seconds = time.perf_counter() - began
    models = {
        "hybrid": hybrid,
        "popular": Popular().fit(data),
        "itemknn": ItemKNN().fit(data),
        "ials": ImplicitALS().fit(data),
    }
    engine = Engine("bench", models, items, {"ranked": SURFACE})
    with pin_threads():
        return _timed(engine, data, hybrid, requests, fit_seconds)


def _timed(
    engine: Engine, data: Dataset, hybrid: Hybrid, requests: int, fit_seconds: float
) -> dict[str, Any]:
    gen = np.random.default_rng(0)
    users = gen.integers(0, data.n_users, size=requests)
    devices = ["mobile", "desktop", "tablet", None]
    start = datetime(2018, 10, 1, tzinfo=UTC)
    sizes: list[int] = []
    known: list[float] = []
    anonymous: list[float] = []
    for n, user in enumerate(users.tolist()):
        context = {"time": start + timedelta(minutes=37 * n), "device": devices[n % 4]}
        request = RankingRequest.model_validate(
            {"user_id": str(data.user_ids[user]), "k": 10, "surface": "ranked", "context": context}
        )
        t0 = time.perf_counter()
        engine.recommend(request)
        known.append(time.perf_counter() - t0)
        row = data.matrix[user]
        pairs = np.flatnonzero(data.users == user)
        latest = data.items[pairs[np.argsort(-data.last_ts[pairs], kind="stable")[:10]]]
        session = Activity([str(data.item_ids[c]) for c in latest], [], [])
        request = RankingRequest.model_validate(
            {"session_id": f"s{n}", "k": 10, "surface": "ranked", "context": context}
        )
        t0 = time.perf_counter()
        engine.recommend(request, session=session)
        anonymous.append(time.perf_counter() - t0)
        if n < 200:
            cands, _ = hybrid.rank_candidates(row, user=user)
            sizes.append(len(cands))
    return {
        "dataset": "movielens-latest-small",
        "items": data.n_items,
        "members": list(hybrid.members_),
        "candidates_per_request_mean": round(float(np.mean(sizes)), 1),
        "hybrid_fit_seconds": round(fit_seconds, 1),
        "requests": requests,
        "known_user": percentiles(known),
        "anonymous_session": percentiles(anonymous),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ranker.json")
    args = parser.parse_args()
    if not DATASET.is_dir():
        sys.exit(f"{DATASET} is missing: this benchmark needs ../shared/datasets")
    document = run(args.requests)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
