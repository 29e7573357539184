"""Runners for the model benchmark: penchant and its peers, each through its own code.

Every runner takes penchant's training `Dataset` and the user codes to recommend to, hands
the library the same interactions in its own form (not timed: `prepare_seconds`), fits it
(`fit_seconds`, the only number compared), asks it for `k` items per user through its own
recommend path with the user's training items excluded, and maps what it returns back into
penchant's item codes (-1 pads a short list). Nothing but the data and the final metrics
is shared between libraries.

- penchant: `create_model(algorithm, **params).fit(train)`, then `model.rank(users, k=k)`.
- implicit: `AlternatingLeastSquares` / `BayesianPersonalizedRanking` from `implicit.cpu`
  on the same CSR, `recommend(users, csr[users], N=k, filter_already_liked_items=True)`.
- lenskit: the scorer in `topn_pipeline` trained on `from_interactions_df`, then
  `lenskit.recommend(pipeline, user_id, n=k)` per user: the pipeline looks up the user's
  training history, scores every training item and leaves the history out.
- cornac: `EASE` fitted on `cornac.data.Dataset.from_uir`, then
  `model.recommend(user_id, k, remove_seen=True, train_set=...)` (full ranking by `score`).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from penchant.data import Dataset

CodeArray = np.ndarray[Any, np.dtype[np.int64]]
#: A lenskit `max_nbrs` of this value means "the longest training history".
LONGEST_HISTORY = "longest-history"


@dataclass
class Result:
    """What one run produced.

    Attributes:
        codes: (users x k) penchant item codes in rank order, -1 padding.
        fit_seconds: wall seconds of training alone.
        prepare_seconds: converting the training data to the library's own form.
        recommend_seconds: ranking for every test user.
        info: facts worth reporting (the resolved parameters, vocabulary sizes...).
    """

    codes: CodeArray
    fit_seconds: float
    prepare_seconds: float = 0.0
    recommend_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def run(
    library: str,
    algorithm: str,
    params: Mapping[str, Any],
    train: Dataset,
    users: CodeArray,
    k: int,
) -> Result:
    """Fit `library`'s `algorithm` with its own `params` and recommend `k` items to `users`.

    Raises:
        KeyError: an unknown library or algorithm.
    """
    return RUNNERS[library](algorithm, dict(params), train, users, k)


def _penchant(
    algorithm: str, params: dict[str, Any], train: Dataset, users: CodeArray, k: int
) -> Result:
    from penchant.models import create_model

    model = create_model(algorithm, **params)
    if algorithm in ("ials", "bpr"):  # imported before the clock, as for implicit's row
        importlib.import_module(f"implicit.cpu.{'als' if algorithm == 'ials' else 'bpr'}")
    started = time.perf_counter()
    model.fit(train)
    fitted = time.perf_counter()
    codes, _ = model.rank(users, k=k)
    return Result(codes, fitted - started, 0.0, time.perf_counter() - fitted)


def _implicit(
    algorithm: str, params: dict[str, Any], train: Dataset, users: CodeArray, k: int
) -> Result:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    classes = {"als": AlternatingLeastSquares, "bpr": BayesianPersonalizedRanking}
    csr = train.matrix  # users x items float32, the very matrix penchant trains on
    # implicit's own advice (it checks when a model is made): BLAS threads fight its OpenMP
    # threads; penchant's ials and bpr train under the same limit. The clock covers what a
    # user of implicit runs to train (the limit, the model, fit), as penchant's fit does.
    started = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model = classes[algorithm](**params)
        model.fit(csr, show_progress=False)
    fitted = time.perf_counter()
    ids, scores = model.recommend(users, csr[users], N=k, filter_already_liked_items=True)
    elapsed = time.perf_counter() - fitted
    codes = np.asarray(ids, dtype=np.int64)
    codes[~np.isfinite(scores)] = -1  # filtered items fill a short list with -inf
    return Result(codes, fitted - started, 0.0, elapsed)


def _lenskit(
    algorithm: str, params: dict[str, Any], train: Dataset, users: CodeArray, k: int
) -> Result:
    import pandas as pd
    from lenskit import recommend, topn_pipeline
    from lenskit.als import ImplicitMFScorer
    from lenskit.data import from_interactions_df
    from lenskit.knn import EASEScorer, ItemKNNScorer
    from lenskit.training import TrainingOptions

    scorers = {"itemknn": ItemKNNScorer, "implicitmf": ImplicitMFScorer, "ease": EASEScorer}
    seed = params.pop("rng", None)
    if params.get("max_nbrs") == LONGEST_HISTORY:
        params["max_nbrs"] = int(train.user_counts.max())
    started = time.perf_counter()
    frame = pd.DataFrame(
        {"user_id": train.user_ids[train.users], "item_id": train.item_ids[train.items]}
    )
    data = from_interactions_df(frame, user_col="user_id", item_col="item_id")
    pipeline = topn_pipeline(scorers[algorithm](**params), n=k)
    prepared = time.perf_counter()
    pipeline.train(data, TrainingOptions(rng=seed))
    fitted = time.perf_counter()
    codes = np.full((len(users), k), -1, dtype=np.int64)
    for row, user in enumerate(train.user_ids[users]):
        ranked = recommend(pipeline, user, n=k).ids()
        codes[row, : len(ranked)] = train.item_codes(ranked.tolist())
    info = {"resolved_params": params, "items_in_model": data.item_count}
    return Result(codes, fitted - prepared, prepared - started, time.perf_counter() - fitted, info)


def _cornac(
    algorithm: str, params: dict[str, Any], train: Dataset, users: CodeArray, k: int
) -> Result:
    import cornac
    from cornac.data import Dataset as CornacDataset

    classes = {"ease": cornac.models.EASE}
    started = time.perf_counter()
    triples = zip(
        train.user_ids[train.users].tolist(),
        train.item_ids[train.items].tolist(),
        train.weights.astype(np.float64).tolist(),
        strict=True,
    )
    train_set = CornacDataset.from_uir(list(triples))
    model = classes[algorithm](**params)
    prepared = time.perf_counter()
    model.fit(train_set)
    fitted = time.perf_counter()
    codes = np.full((len(users), k), -1, dtype=np.int64)
    for row, user in enumerate(train.user_ids[users].tolist()):
        ranked = model.recommend(user, k=k, remove_seen=True, train_set=train_set)
        codes[row, : len(ranked)] = train.item_codes(ranked)
    info = {"items_in_model": train_set.num_items}
    return Result(codes, fitted - prepared, prepared - started, time.perf_counter() - fitted, info)


Runner = Callable[[str, dict[str, Any], Dataset, CodeArray, int], Result]
RUNNERS: dict[str, Runner] = {
    "penchant": _penchant,
    "implicit": _implicit,
    "lenskit": _lenskit,
    "cornac": _cornac,
}
