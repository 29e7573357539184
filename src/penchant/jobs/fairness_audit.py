"""The fairness audit: one model's top lists re-ranked by each re-ranker at each strength,
judged for accuracy and for diversity, popularity bias, calibration and exposure.

The data is read and split as `penchant evaluate` reads and splits it. The model ranks its
top `candidates` unseen items for every test user; each re-ranker of
`penchant.ranking.fair_rerank` (and the `diversity` stage's maximal marginal relevance)
reorders them at each strength, and the top k is judged. The row with re-ranker `none` is
the model's own list. The item groups are the head and the long tail: the exposure
re-ranker aims each at its share of the training interactions (its `interactions` target),
and the exposure tables set each group's exposure against its share of the test relevance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from rich.console import Console
from rich.progress import Progress

from penchant.data import Split, split
from penchant.data.toplists import long_tail_items
from penchant.errors import InvalidInput
from penchant.evaluation.metrics import catalog_metrics, ranking_metrics
from penchant.fairness import (
    exposure_disparity,
    intra_list_diversity,
    long_tail_share,
    miscalibration,
    popularity_lift,
    utility_gap,
)
from penchant.jobs.evaluate import EvaluateOptions, held_out_share, read_dataset
from penchant.models import create_model
from penchant.ranking import fair_rerank
from penchant.ranking.rerank import mmr

RERANKERS = ("diversity", "calibration", "long_tail", "popularity_penalty", "fair_exposure")
#: The strengths each re-ranker is swept over (MMR's strength is not bounded by 1).
STRENGTHS: dict[str, tuple[float, ...]] = {
    "diversity": (0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
    "calibration": (0.1, 0.3, 0.5, 0.7, 0.9, 0.99),
    "long_tail": (0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
    "popularity_penalty": (0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.7),
    "fair_exposure": (0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.7, 0.9),
}
#: The head of the catalog: the most popular items that take this share of all interactions.
HEAD_SHARE = 0.8
#: The cut in average recommendation popularity whose cheapest strength the audit finds for
#: the popularity penalty (whose ARP falls as its strength grows), and the precision.
ARP_TARGET, TARGET_PRECISION = 0.3, 1e-3


@dataclass(frozen=True)
class AuditOptions:
    """What `penchant fairness audit` takes: the data options of `penchant evaluate`, the
    model, the cut-off and how many candidates each list is re-ranked from."""

    data: EvaluateOptions
    model: str = "ease"
    k: int = 10
    candidates: int = 100
    strengths: dict[str, tuple[float, ...]] | None = None  # None: `STRENGTHS`


@dataclass(frozen=True)
class _Lists:
    """The model's candidate lists and what the re-rankers and metrics read about them."""

    the_split: Split
    users: np.ndarray[Any, Any]
    codes: np.ndarray[Any, Any]  # (users, candidates), -1 padded
    scores: np.ndarray[Any, Any]
    history: sp.csr_matrix  # the test users' training items
    labels: sp.csr_matrix  # (items, categories), 0/1
    tail: np.ndarray[Any, Any]  # per item: in the long tail
    popularity: np.ndarray[Any, Any]  # per item: its training interactions over the most's
    earned: np.ndarray[Any, Any]  # head's and tail's shares of the training interactions


def run_audit(options: AuditOptions, console: Console | None = None) -> list[dict[str, Any]]:
    """Sweep every re-ranker's strength; one row per (re-ranker, strength), `none` first.

    Returns:
        `[{"reranker", "strength", "metrics": {...}, "groups": {...}}, ...]`.

    Raises:
        InvalidInput: bad options, or items without categories (calibration and diversity
            need them).
    """
    if options.k < 1 or options.candidates < options.k:
        raise InvalidInput("candidates: at least k", field="candidates")
    lists = _candidate_lists(options)
    sweep = options.strengths or STRENGTHS
    plan = [("none", 0.0)] + [(r, s) for r in RERANKERS for s in sweep.get(r, ())]
    rows: list[dict[str, Any]] = []
    with Progress(console=console, transient=True, disable=console is None) as progress:
        task = progress.add_task("re-ranking and judging", total=len(plan))
        for name, strength in plan:
            recommended = _rerank(lists, name, strength, options.k)
            metrics, groups = _judge(lists, recommended, options.k)
            rows.append(
                {"reranker": name, "strength": strength, "metrics": metrics, "groups": groups}
            )
            progress.advance(task)
    if "popularity_penalty" in sweep:
        base_arp = rows[0]["metrics"]["arp"]
        found = _strength_for_arp_cut(lists, "popularity_penalty", base_arp, options.k)
        if found is not None:
            metrics, groups = _judge(
                lists, _rerank(lists, "popularity_penalty", found, options.k), options.k
            )
            rows.append(
                {
                    "reranker": "popularity_penalty",
                    "strength": found,
                    "metrics": metrics,
                    "groups": groups,
                    "found_by": f"the least strength that cuts ARP by {ARP_TARGET:.0%}",
                }
            )
    return rows


def _strength_for_arp_cut(lists: _Lists, name: str, base_arp: float, k: int) -> float | None:
    """The least strength (to `TARGET_PRECISION`) at which re-ranker `name` cuts the lists'
    ARP (`base_arp` without re-ranking) by `ARP_TARGET`, by bisection; None when even
    strength 1 does not. The re-ranker's ARP must fall as its strength grows, as the
    popularity penalty's does (tests/ranking/test_fair_rerank.py)."""
    train = lists.the_split.train

    def arp(strength: float) -> float:
        return catalog_metrics(
            _rerank(lists, name, strength, k),
            [k],
            n_items=train.n_items,
            item_counts=train.item_counts,
            n_users_train=int(np.count_nonzero(train.user_counts)),
        )[f"arp@{k}"]

    goal = (1.0 - ARP_TARGET) * base_arp
    if arp(1.0) > goal:
        return None
    low, high = 0.0, 1.0
    while high - low > TARGET_PRECISION:
        middle = (low + high) / 2
        low, high = (low, middle) if arp(middle) <= goal else (middle, high)
    return round(high, 4)


def _candidate_lists(options: AuditOptions) -> _Lists:
    data, _, _ = read_dataset(options.data, catalog=True)
    if data.item_categories is None or not data.item_categories.nnz:
        raise InvalidInput(
            "the audit needs the items' categories: give --items FILE with a categories "
            "column (MovieLens: movies.csv beside ratings.csv is read by itself)",
            field="items",
        )
    the_split = split(
        data,
        options.data.protocol,
        test_fraction=held_out_share(options.data),
        test_users=options.data.test_users,
        rng=options.data.seed,
    )
    model = create_model(options.model).fit(the_split.train)
    test = the_split.test.matrix
    users = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int64)
    history = the_split.history.matrix[users]
    codes = users if the_split.fold_in is None else np.full(len(users), -1, np.int64)
    ranked, scores = model.rank(codes, history, options.candidates)
    tail = long_tail_items(the_split.train.item_counts, HEAD_SHARE)
    labels = sp.csr_matrix(data.item_categories, dtype=np.float64)
    counts = np.asarray(the_split.train.item_counts, dtype=np.float64)
    popularity = counts / max(float(counts.max(initial=0.0)), 1.0)
    by_group = np.bincount(tail.astype(np.int64), weights=counts, minlength=2)
    earned = by_group / max(float(by_group.sum()), 1.0)
    return _Lists(
        the_split, users, ranked, scores, sp.csr_matrix(history), labels, tail, popularity, earned
    )


def _rerank(lists: _Lists, name: str, strength: float, k: int) -> np.ndarray[Any, Any]:
    out = np.full((len(lists.users), k), -1, dtype=np.int64)
    for row in range(len(lists.users)):
        codes = lists.codes[row]
        valid = codes >= 0
        codes, scores = codes[valid], lists.scores[row][valid]
        if name == "none" or strength == 0 or len(codes) < 2:
            picked = list(range(min(k, len(codes))))
        else:
            picked = _PICKERS[name](lists, row, codes, scores, strength, k)
        out[row, : len(picked)] = codes[picked]
    return out


def _diversity(
    lists: _Lists, row: int, codes: Any, scores: Any, strength: float, k: int
) -> list[int]:
    dense = np.asarray(lists.labels[codes].todense() > 0, dtype=np.float64)
    return mmr(fair_rerank.unit_scale(scores), dense, min(k, len(codes)), strength)


def _calibration(
    lists: _Lists, row: int, codes: Any, scores: Any, strength: float, k: int
) -> list[int]:
    held = lists.history[row].indices
    target = fair_rerank.label_shares(lists.labels, held).sum(axis=0)
    if target.sum() > 0:
        target = target / target.sum()
    return fair_rerank.calibrated(
        scores, fair_rerank.label_shares(lists.labels, codes), target, k, strength
    )


def _long_tail(
    lists: _Lists, row: int, codes: Any, scores: Any, strength: float, k: int
) -> list[int]:
    held = lists.history[row].indices
    affinity = float(lists.tail[held].mean()) if len(held) else 1.0 - HEAD_SHARE
    return fair_rerank.long_tail(scores, lists.tail[codes], affinity, k, strength)


def _popularity_penalty(
    lists: _Lists, row: int, codes: Any, scores: Any, strength: float, k: int
) -> list[int]:
    return fair_rerank.popularity_penalty(scores, lists.popularity[codes], k, strength)


def _fair_exposure(
    lists: _Lists, row: int, codes: Any, scores: Any, strength: float, k: int
) -> list[int]:
    groups = lists.tail[codes].astype(np.int64)  # 0: head, 1: tail
    return fair_rerank.fair_exposure(scores, groups, lists.earned, k, strength)


_PICKERS: dict[str, Callable[..., list[int]]] = {
    "diversity": _diversity,
    "calibration": _calibration,
    "long_tail": _long_tail,
    "popularity_penalty": _popularity_penalty,
    "fair_exposure": _fair_exposure,
}


def _judge(
    lists: _Lists, recommended: np.ndarray[Any, Any], k: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Accuracy, popularity bias, diversity, calibration and exposure of the top-k lists."""
    train = lists.the_split.train
    relevant = lists.the_split.test.matrix[lists.users]
    per_user = ranking_metrics(recommended, relevant, [k])
    catalog = catalog_metrics(
        recommended,
        [k],
        n_items=train.n_items,
        item_counts=train.item_counts,
        n_users_train=int(np.count_nonzero(train.user_counts)),
    )
    groups = lists.tail.astype(np.int64)
    exposure = exposure_disparity(recommended, k, item_groups=groups, relevance=relevant)
    activity = _activity_groups(lists.history)
    gap = utility_gap(per_user[f"ndcg@{k}"], activity)
    metrics = {
        f"ndcg@{k}": float(np.mean(per_user[f"ndcg@{k}"])),
        f"recall@{k}": float(np.mean(per_user[f"recall@{k}"])),
        "arp": catalog[f"arp@{k}"],
        "coverage": catalog[f"coverage@{k}"],
        "novelty": catalog[f"novelty@{k}"],
        "gini": catalog[f"gini@{k}"],
        "ild": intra_list_diversity(recommended, k, item_labels=lists.labels),
        "long_tail_share": long_tail_share(
            recommended, k, item_counts=train.item_counts, head_share=HEAD_SHARE
        ),
        "popularity_lift": float(
            popularity_lift(recommended, k, item_counts=train.item_counts, history=lists.history)
        ),
        "miscalibration": miscalibration(
            recommended, k, item_labels=lists.labels, history=lists.history
        ),
        "exposure_disparity": exposure["disparity"],
        "ndcg_gap_by_activity": gap["gap"],
    }
    names = {0: "head", 1: "tail"}
    table = {
        names[g]: {
            "exposure_share": exposure["exposure_share"].get(g, 0.0),
            "relevance_share": exposure["relevance_share"].get(g, 0.0),
        }
        for g in (0, 1)
    }
    by_activity = {["light", "medium", "heavy"][g]: v for g, v in gap["by_group"].items()}
    return metrics, {"items": table, f"ndcg@{k}_by_activity": by_activity}


def _activity_groups(history: sp.csr_matrix) -> np.ndarray[Any, Any]:
    """Light, medium and heavy users: terciles of their history's length (0, 1, 2)."""
    lengths = np.diff(history.indptr)
    cuts = np.quantile(lengths, [1 / 3, 2 / 3])
    groups: np.ndarray[Any, Any] = np.searchsorted(cuts, lengths, side="right").astype(np.int64)
    return groups


def best_setting(
    rows: Sequence[dict[str, Any]], k: int, *, arp_cut: float = 0.3, ndcg_loss: float = 0.05
) -> dict[str, Any] | None:
    """The row that cuts ARP most while keeping NDCG@k within `ndcg_loss` of `none`'s, if it
    cuts ARP by at least `arp_cut`; else None."""
    base = next(r for r in rows if r["reranker"] == "none")["metrics"]
    best: dict[str, Any] | None = None
    for row in rows:
        m = row["metrics"]
        cut = 1.0 - m["arp"] / base["arp"]
        loss = 1.0 - m[f"ndcg@{k}"] / base[f"ndcg@{k}"]
        if loss <= ndcg_loss and cut >= arp_cut and (best is None or cut > best["arp_cut"]):
            best = {**row, "arp_cut": cut, "ndcg_loss": loss}
    return best
