"""What the learned ranker learns from: lists of candidates with 0/1 labels.

Two kinds (`training_rows`): held-out pairs, where the members are fitted on each person's
older pairs and the ranker learns to put the newest ones first among the candidates; and
served lists (`Dataset.impressions`), where it learns to put first what the person took
from a list they were shown, with the list's own time and context. Served lists are only
ever added to the held-out lists (see `penchant.models.hybrid.Hybrid`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from penchant.data import Dataset, ImpressionLog
from penchant.errors import InvalidInput
from penchant.models.base import CodeArray
from penchant.models.features import FloatArray, ItemStats, context_values

if TYPE_CHECKING:
    from penchant.models.hybrid import Hybrid

#: A person's most recent items that make the `content_recent` feature.
RECENT_ITEMS = 5
#: `trained_on_` labels.
HELD_OUT, BOTH, SERVED = "held-out", "impressions and held-out", "impressions"


def hold_out_newest(data: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """Each person's newest `fraction` of pairs (at least one, never all) and the rest."""
    order = np.lexsort((np.arange(len(data)), -data.first_ts, data.users))
    users = data.users[order]
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    counts = np.diff(np.r_[starts, len(order)])
    position = np.arange(len(order)) - np.repeat(starts, counts)
    size = np.repeat(counts, counts)
    n_held = np.where(size >= 2, np.maximum(1, np.floor(size * fraction)), 0)
    held = np.zeros(len(data), dtype=bool)
    held[order[position < n_held]] = True
    return data.subset(~held), data.subset(held)


def recent_items(data: Dataset) -> sp.csr_matrix:
    """(people x items) 0/1 matrix of each person's `RECENT_ITEMS` latest items."""
    order = np.lexsort((np.arange(len(data)), -data.last_ts, data.users))
    users = data.users[order]
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1] if len(users) else []
    counts = np.diff(np.r_[starts, len(order)])
    position = np.arange(len(order)) - np.repeat(starts, counts)
    keep = order[position < RECENT_ITEMS]
    return sp.csr_matrix(
        (np.ones(len(keep), np.float32), (data.users[keep], data.items[keep])),
        shape=(data.n_users, data.n_items),
    )


#: What the ranker learns from: feature blocks, their 0/1 labels, and the size of each list.
Rows = tuple[list[FloatArray], list[np.ndarray[Any, np.dtype[np.int32]]], list[int]]


def training_rows(model: Hybrid, data: Dataset) -> Rows:
    """The held-out rows, and the served lists' rows when there are enough; sets
    `trained_on_`.

    Raises:
        InvalidInput: no held-out item among the candidates and no usable served list.
    """
    listed = None
    if data.impressions is not None:
        listed = impression_rows(model, data, data.impressions)
    devices = data.impressions.devices if data.impressions is not None else None
    try:
        held = held_out_rows(model, data, devices if listed is not None else None)
    except InvalidInput:
        if listed is None:
            raise
        model.trained_on_ = SERVED
        return listed
    if listed is None:
        model.trained_on_ = HELD_OUT
        return held
    model.trained_on_ = BOTH
    return listed[0] + held[0], listed[1] + held[1], listed[2] + held[2]


def held_out_rows(
    model: Hybrid, data: Dataset, devices: np.ndarray[Any, np.dtype[np.object_]] | None = None
) -> Rows:
    """Fit the members on each person's older pairs; the candidates of people with held-out
    pairs, labelled by whether they are among them.

    Without `devices` the rows carry no request context (NaN). With the devices of the
    served lists learned from alongside, each person's rows carry the hour and weekday of
    their first held-out pair and a device drawn from `devices` (seeded by `model.rng`), so
    that the ranker cannot tell the two kinds of list apart by a missing context.
    """
    inner, labels = hold_out_newest(data, model.label_fraction)
    if len(inner) == 0 or len(labels) == 0:
        raise InvalidInput("hybrid: too few interactions per person to learn a ranker from")
    gen = np.random.default_rng(model.rng)
    people = np.unique(labels.users)
    if len(people) > model.max_users:
        people = np.sort(gen.choice(people, size=model.max_users, replace=False))
    model.members_ = {n: m.fit(inner) for n, m in model._new_members(data).items()}
    model.stats_ = ItemStats.of(inner)
    model.recent_ = recent_items(inner)
    model._set_vectors()
    held = labels.matrix
    if devices is not None:  # each person's request: when their first held-out pair began
        asked = np.full(data.n_users, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(asked, labels.users, labels.first_ts)
        draw = np.random.default_rng([model.rng, 1])  # apart from the draw of people above
    blocks, targets, groups = [], [], []
    step = 256
    for start in range(0, len(people), step):
        users = people[start : start + step].astype(np.int64)
        contexts = None
        if devices is not None:
            picks = devices[draw.integers(len(devices), size=len(users))]
            contexts = [context_values(int(asked[u]), d) for u, d in zip(users, picks, strict=True)]
        listed = model._candidates(users, inner.matrix[users], contexts=contexts)
        for row, (cands, feats) in enumerate(listed):
            truth = np.isin(cands, held[users[row]].indices).astype(np.int32)
            if truth.any():
                blocks.append(feats)
                targets.append(truth)
                groups.append(len(cands))
    if not groups:
        raise InvalidInput("hybrid: no held-out item is among the members' candidates")
    return blocks, targets, groups


def impression_rows(model: Hybrid, data: Dataset, log: ImpressionLog) -> Rows | None:
    """Fit the members on the pairs before the newest `label_fraction` of the usable served
    lists; those lists' items, labelled by whether the person took them.

    None (and the held-out way instead) when there are fewer than `min_impression_groups`
    usable lists, no pair before them, or no list keeps a taken and an ignored item once
    the items the person already had are left out.
    """
    usable = log.usable_groups()
    if len(usable) < model.min_impression_groups:
        return None
    times = log.group_times()
    n_labelled = max(1, int(len(usable) * model.label_fraction))
    cutoff = int(np.sort(times[usable])[-n_labelled])
    inner = data.subset(data.first_ts < cutoff)
    if len(inner) == 0:
        return None
    labelled = usable[times[usable] >= cutoff]
    order = np.argsort(log.groups, kind="stable")
    starts = np.searchsorted(log.groups[order], labelled)
    ends = np.searchsorted(log.groups[order], labelled, side="right")
    owner = log.users[order[starts]]  # a list is one person's
    people = np.unique(owner)
    if len(people) > model.max_users:
        gen = np.random.default_rng(model.rng)
        people = np.sort(gen.choice(people, size=model.max_users, replace=False))
    model.members_ = {n: m.fit(inner) for n, m in model._new_members(data).items()}
    model.stats_ = ItemStats.of(inner)
    model.recent_ = recent_items(inner)
    model._set_vectors()
    by_person = np.argsort(owner, kind="stable")
    blocks, targets, groups = [], [], []
    step = 256
    for start in range(0, len(people), step):
        users = people[start : start + step].astype(np.int64)
        lists: list[Listed] = []
        labels = []
        for g in by_person[np.isin(owner[by_person], users)]:
            rows = order[starts[g] : ends[g]]
            at = int(times[labelled[g]])
            row = int(np.searchsorted(users, owner[g]))
            lists.append((row, log.items[rows], at, context_values(at, log.devices[rows[0]])))
            labels.append(log.labels[rows].astype(np.int32))
        for (kept, feats), truth in zip(
            listed_features(model, users, inner.matrix[users], lists), labels, strict=True
        ):
            truth = truth[kept]
            if truth.any() and not truth.all():
                blocks.append(feats)
                targets.append(truth)
                groups.append(len(truth))
    return (blocks, targets, groups) if groups else None


#: One served list to compute features for: the person's row in the batch, the items shown,
#: when (microseconds), and the request's context (`context_values`).
Listed = tuple[int, CodeArray, int, tuple[float, float, float]]


def listed_features(
    model: Hybrid, users: CodeArray, history: sp.csr_matrix, lists: Sequence[Listed]
) -> list[tuple[np.ndarray[Any, np.dtype[np.bool_]], FloatArray]]:
    """Per list: which of its items serving could propose, and their feature rows.

    The features are those `Hybrid._candidates` gives the same items for the same person,
    time and context: each item is scored and ranked among the union of the members' top
    `candidates` and the list's items, so a member's rank means what it means at serving.
    Items of the person's history are not proposable (serving leaves them out).
    """
    history = sp.csr_matrix(history)
    recent = model._recent_rows(users, history)
    scores = model._member_scores(users, history)
    tops: dict[int, CodeArray] = {}
    profiles: dict[int, FloatArray | None] = {}
    out = []
    for row, items, now_us, context in lists:
        if row not in tops:
            tops[row] = model._tops(scores, row)
            profiles[row] = recent_profile(model._vectors, recent[row])
        proposed = np.concatenate([tops[row], items])
        cands, feats = model._row_features(
            proposed, scores, row, history[row], now_us, profiles[row], context
        )
        at = np.minimum(np.searchsorted(cands, items), max(len(cands) - 1, 0))
        kept = (cands[at] == items) if len(cands) else np.zeros(len(items), dtype=bool)
        out.append((kept, feats[at[kept]]))
    return out


def recent_profile(vectors: FloatArray | None, recent: sp.csr_matrix) -> FloatArray | None:
    """The unit mean text vector of a person's recent items (None without texts or items)."""
    if vectors is None or not recent.nnz:
        return None
    mean = vectors[recent.indices].mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None
