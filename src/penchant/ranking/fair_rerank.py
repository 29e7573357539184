"""Re-ranking for calibration, the long tail, popularity and fair exposure, over one list.

Each function takes the candidates' relevance (higher is better, any scale: it is mapped to
[0, 1], or taken relative to the top candidate's, first) and what the objective needs about
them, and returns the order in which it picks `k` of them (row indices). `strength` is the
one knob: 0 keeps the relevance order, 1 looks at the objective alone (ties broken by
relevance). The serving stages in `penchant.ranking.fair_stages` and the offline audit
(`penchant.jobs.fairness_audit`) call the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from penchant.errors import InvalidInput

Floats = np.ndarray[Any, np.dtype[np.float64]]
Rows = list[int]
#: Added x relevance to every value, so that at strength 1 ties go to the more relevant row.
_TIE = 1e-9


def label_shares(labels: sp.csr_matrix, codes: np.ndarray[Any, Any]) -> Floats:
    """Rows of a 0/1 label matrix as each item's share of each label (an item's labels
    share one unit; an item without labels is all zero)."""
    rows = np.asarray(labels[codes].todense(), dtype=np.float64)
    total = rows.sum(axis=1, keepdims=True)
    out: Floats = np.divide(rows, total, out=np.zeros_like(rows), where=total > 0)
    return out


def unit_scale(relevance: Floats) -> Floats:
    """Relevance mapped to [0, 1] (all equal: all 1)."""
    rel = np.asarray(relevance, dtype=np.float64)
    spread = float(rel.max() - rel.min()) if len(rel) else 0.0
    return (rel - rel.min()) / spread if spread > 0 else np.ones(len(rel))


def _check(relevance: Floats, k: int, strength: float) -> int:
    if not 0.0 <= strength <= 1.0:
        raise InvalidInput("strength: must lie in [0, 1]", field="strength")
    if k < 0:
        raise InvalidInput("k: must be 0 or more", field="k")
    return min(int(k), len(relevance))


def calibrated(
    relevance: Floats,
    label_shares: Floats,
    target: Floats,
    k: int,
    strength: float,
    *,
    alpha: float = 0.01,
) -> Rows:
    """Steck's (2018) calibrated re-ranking: the greedy maximizer of
    (1 - strength) x sum of relevance - strength x KL(target || q~), where q is the label
    mix of the picked items (each item's `label_shares` row sums to one over its labels, or
    to zero for an item without labels) and q~ = (1 - alpha) q + alpha target.

    Args:
        relevance: (n,) the candidates' relevance.
        label_shares: (n, L) each candidate's share of each label.
        target: (L,) the label mix the list should have (the person's history's), summing
            to one; an all-zero target (no history) keeps the relevance order.
        k: how many to pick.
        strength: the weight of calibration, in [0, 1].
        alpha: the smoothing that keeps the divergence finite.

    Returns:
        The picked rows in order.
    """
    k = _check(relevance, k, strength)
    rel = unit_scale(relevance)
    shares = np.asarray(label_shares, dtype=np.float64)
    p = np.asarray(target, dtype=np.float64)
    if shares.shape != (len(rel), len(p)):
        raise InvalidInput("label_shares: must be (candidates x labels)", field="label_shares")
    if strength == 0 or p.sum() <= 0:
        return [int(i) for i in np.argsort(-rel, kind="stable")[:k]]
    support = p > 0
    p_s = p[support]
    picked: Rows = []
    open_rows = np.ones(len(rel), dtype=bool)
    mix = np.zeros(len(p))  # the label mass of the picked items
    total_relevance = 0.0
    for _ in range(k):
        # q~ of the list with each open candidate added, over the target's labels only
        # (KL(p || q~) sums over the labels p holds)
        after = mix[None, support] + shares[:, support]
        count = len(picked) + 1
        q = after / count
        q_tilde = (1.0 - alpha) * q + alpha * p_s
        kl = (p_s * np.log(p_s / q_tilde)).sum(axis=1)
        value = (1.0 - strength) * (total_relevance + rel) - strength * kl + _TIE * rel
        value[~open_rows] = -np.inf
        best = int(np.argmax(value))
        picked.append(best)
        open_rows[best] = False
        mix += shares[best]
        total_relevance += rel[best]
    return picked


def long_tail(
    relevance: Floats,
    tail: np.ndarray[Any, Any],
    tail_affinity: float,
    k: int,
    strength: float,
    *,
    smooth: bool = True,
) -> Rows:
    """xQuAD for popularity (Abdollahpouri et al. 2019): pick by
    (1 - strength) x relevance + strength x sum over c in {head, tail} of
    P(c | person) x [the item is in c] x prod over picked items j of (1 - P(j | c, S)).
    Binary (`smooth=False`): P(j | c, S) = [j is in c], so a group is worth nothing once the
    list has one of its items. Smooth (the default): P(j | c, S) is the share of the picked
    items S that are in c, so the product is (1 - that share)^|S| and a group keeps its
    worth in proportion to how little of the list it has.

    Args:
        relevance: (n,) the candidates' relevance.
        tail: (n,) bool, whether each candidate is a long-tail item.
        tail_affinity: P(tail | person), e.g. the tail's share of their history, in [0, 1].
        k: how many to pick.
        strength: the weight of coverage of the two groups, in [0, 1].

    Returns:
        The picked rows in order.
    """
    k = _check(relevance, k, strength)
    if not 0.0 <= tail_affinity <= 1.0:
        raise InvalidInput("tail_affinity: must lie in [0, 1]", field="tail_affinity")
    rel = unit_scale(relevance)
    is_tail = np.asarray(tail, dtype=bool)
    if is_tail.shape != rel.shape:
        raise InvalidInput("tail: one flag per candidate", field="tail")
    weight = np.where(is_tail, tail_affinity, 1.0 - tail_affinity)
    in_group = {True: 0, False: 0}  # picked items per group: tail, head
    picked: Rows = []
    open_rows = np.ones(len(rel), dtype=bool)
    for _ in range(k):
        uncovered = {}
        for group in (True, False):
            if smooth:
                n = len(picked)
                uncovered[group] = (1.0 - in_group[group] / n) ** n if n else 1.0
            else:
                uncovered[group] = 0.0 if in_group[group] else 1.0
        cover = weight * np.where(is_tail, uncovered[True], uncovered[False])
        value = (1.0 - strength) * rel + strength * cover + _TIE * rel
        value[~open_rows] = -np.inf
        best = int(np.argmax(value))
        picked.append(best)
        open_rows[best] = False
        in_group[bool(is_tail[best])] += 1
    return picked


def fair_exposure(
    relevance: Floats, groups: np.ndarray[Any, Any], target: Floats, k: int, strength: float
) -> Rows:
    """Greedy re-ranking towards a target share of position-discounted exposure per group
    (exposure of rank r, from 1: 1 / log2(1 + r), as Singh and Joachims 2018).

    At each position, each open candidate is worth (1 - strength) x relevance + strength x
    its group's deficit: the group's target share of the exposure given so far, this
    position included, less the exposure the group already has, relative to the position's
    exposure (clipped to [0, 1]). Groups below their target are pulled up the list as soon
    as their deficit outweighs the relevance they cost.

    Args:
        relevance: (n,) the candidates' relevance.
        groups: (n,) each candidate's group code, 0..G-1, or -1 for none (no deficit).
        target: (G,) each group's target share of exposure (e.g. its share of relevance,
            or equal shares); it need not sum to one over the groups present.
        k: how many to pick.
        strength: the weight of the exposure target, in [0, 1].

    Returns:
        The picked rows in order.
    """
    k = _check(relevance, k, strength)
    rel = unit_scale(relevance)
    code = np.asarray(groups, dtype=np.int64)
    share = np.asarray(target, dtype=np.float64)
    if (
        code.shape != rel.shape
        or (len(code) and code.max() >= len(share))
        or code.min(initial=0) < -1
    ):
        raise InvalidInput(
            "groups: one code per candidate, below len(target), or -1", field="groups"
        )
    had = np.zeros(len(share))
    given = 0.0
    picked: Rows = []
    open_rows = np.ones(len(rel), dtype=bool)
    for position in range(1, k + 1):
        exposure = 1.0 / np.log2(1.0 + position)
        deficit = np.clip((share * (given + exposure) - had) / exposure, 0.0, 1.0)
        pull = np.where(code >= 0, deficit[np.maximum(code, 0)], 0.0)
        value = (1.0 - strength) * rel + strength * pull + _TIE * rel
        value[~open_rows] = -np.inf
        best = int(np.argmax(value))
        picked.append(best)
        open_rows[best] = False
        if code[best] >= 0:
            had[code[best]] += exposure
        given += exposure
    return picked


def relative_to_top(relevance: Floats) -> Floats:
    """Relevance as a share of the top candidate's (score / top score) when the top is
    positive: free of the scores' unit and of how many candidates there are; otherwise
    mapped to [0, 1] (`unit_scale`)."""
    rel = np.asarray(relevance, dtype=np.float64)
    top = float(rel.max()) if len(rel) else 0.0
    return rel / top if top > 0 else unit_scale(rel)


def popularity_penalty(relevance: Floats, popularity: Floats, k: int, strength: float) -> Rows:
    """Popularity compensation: the k candidates with the most
    (1 - strength) x relevance - strength x popularity, in their relevance order.

    This is the Lagrangian of the average recommendation popularity (ARP): a list's ARP is
    the mean of its items' popularity, linear in each, so penalizing popularity linearly
    trades accuracy for ARP at one rate over the whole catalog. The most popular items
    pay most, and an item of middling popularity gives way only to a nearly as relevant
    one. The picked set is then shown in relevance order, the best order for any set, since
    the penalty does not depend on the position.

    Args:
        relevance: (n,) the candidates' relevance, taken as a share of the top one's
            (`relative_to_top`).
        popularity: (n,) each candidate's popularity in [0, 1], e.g. its interactions over
            the most popular item's.
        k: how many to pick.
        strength: the weight of the penalty, in [0, 1] (the penalty per unit of popularity
            is strength / (1 - strength) units of the top candidate's relevance).

    Returns:
        The picked rows in order.
    """
    k = _check(relevance, k, strength)
    rel = relative_to_top(relevance)
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.shape != rel.shape:
        raise InvalidInput("popularity: one value per candidate", field="popularity")
    if len(pop) and (not np.isfinite(pop).all() or pop.min() < 0 or pop.max() > 1):
        raise InvalidInput("popularity: values in [0, 1]", field="popularity")
    value = (1.0 - strength) * rel - strength * pop + _TIE * rel
    chosen = np.argsort(-value, kind="stable")[:k]
    ordered = chosen[np.argsort(-rel[chosen], kind="stable")]
    return [int(i) for i in ordered]
