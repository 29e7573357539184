"""Cold items: the content model against a TF-IDF baseline and chance, side by side.

MovieLens latest-small, read as `penchant evaluate --format movielens` reads it, with the
items' texts from movies.csv and tags.csv (title, genres, tags). The `cold-start` protocol
holds 10% of the items out whole, drawn with the seed; every model ranks those cold items
only, for every user who took one, and is judged by penchant's own metrics.

- `content`: penchant's `ContentModel` (all-MiniLM-L6-v2, centered vectors, decayed mean
  profile), through `evaluate_model` like any model.
- `tfidf-profile`: scikit-learn's `TfidfVectorizer` over the same texts; a user's profile is
  the sum of their items' TF-IDF vectors, an item's score its cosine with the profile.
- `tfidf-knn`: the same vectors; each cold item keeps its 50 most similar items, and its
  score is the summed similarity of those the user took (item-kNN on text).
- `popular`: what a model that cannot see cold items scores (ties in random order).
- `random`: the exact expectation of a uniformly random ranking: Recall@k = k / cold items.

    .venv/bin/python bench/cold_start_bench.py [--seeds 0,1,2] [--out bench/out/cold_start.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from penchant.data import Dataset, Split, split
from penchant.evaluation.metrics import ranking_metrics
from penchant.evaluation.run import evaluate_model
from penchant.jobs.evaluate import EvaluateOptions, read_dataset
from penchant.models import ContentModel, Popular

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "movielens-latest-small"
KS = (10, 20)


def movielens_with_texts() -> Dataset:
    """The ratings as interactions, each item with its text."""
    options = EvaluateOptions(
        dataset=DATASET, output=Path("."), format="movielens", models=["content"]
    )
    data, _, texts = read_dataset(options)
    assert texts is not None
    return data


def judged(scores: np.ndarray[Any, Any], the_split: Split, seed: int) -> dict[str, float]:
    """Mean metrics of score rows (test users x items) over the cold items, ties random."""
    assert the_split.candidates is not None
    cold = the_split.candidates
    test = the_split.test.matrix
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    block = scores[:, cold]
    ties = np.random.default_rng(seed).random(block.shape)
    order = np.lexsort((ties, -block), axis=1)[:, : max(KS)]
    per_user = ranking_metrics(cold[order].astype(np.int64), test[users], KS)
    return {name: float(values.mean()) for name, values in per_user.items()}


def tfidf_scores(data: Dataset, the_split: Split, neighbours: int | None) -> np.ndarray[Any, Any]:
    """TF-IDF cosine scores of every item for each test user (see the module docstring)."""
    assert data.item_texts is not None and the_split.candidates is not None
    vectors = normalize(TfidfVectorizer().fit_transform(data.item_texts.tolist()))
    test = the_split.test.matrix
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    taken = the_split.train.matrix[users].copy()
    taken.data[:] = 1.0
    if neighbours is None:
        profiles = normalize(sp.csr_matrix(taken @ vectors))
        return np.asarray((profiles @ vectors.T).toarray(), dtype=np.float32)
    cold = the_split.candidates
    similar = (vectors[cold] @ vectors.T).toarray()
    np.fill_diagonal(similar[:, cold], 0.0)
    kth = -np.partition(-similar, neighbours, axis=1)[:, neighbours][:, None]
    similar[similar < kth] = 0.0
    scores = np.zeros((len(users), data.n_items), dtype=np.float32)
    scores[:, cold] = (taken @ sp.csr_matrix(similar).T).toarray()
    return scores


def run(seeds: list[int]) -> dict[str, Any]:
    data = movielens_with_texts()
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        the_split = split(data, "cold-start", test_fraction=0.1, rng=seed)
        assert the_split.candidates is not None
        n_cold = len(the_split.candidates)
        began = time.perf_counter()
        content = evaluate_model(ContentModel(), the_split, KS, seed=seed)
        content_seconds = time.perf_counter() - began
        popular = evaluate_model(Popular(), the_split, KS, seed=seed)
        results = {
            "content": {m: content.mean(m) for m in content.per_user},
            "tfidf-profile": judged(tfidf_scores(data, the_split, None), the_split, seed),
            "tfidf-knn": judged(tfidf_scores(data, the_split, 50), the_split, seed),
            "popular": {m: popular.mean(m) for m in popular.per_user},
            "random": {f"recall@{k}": k / n_cold for k in KS},
        }
        rows.append(
            {
                "seed": seed,
                "cold_items": n_cold,
                "test_users": len(content.users),
                "content_fit_and_rank_seconds": round(content_seconds, 2),
                "results": results,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    return {
        "dataset": "movielens-latest-small",
        "protocol": "cold-start (10% of items)",
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "runs": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "cold_start.json")
    args = parser.parse_args()
    if not DATASET.is_dir():
        sys.exit(f"{DATASET} is missing: this benchmark needs ../shared/datasets")
    document = run([int(s) for s in args.seeds.split(",")])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
