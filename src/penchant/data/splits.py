"""Evaluation splits: global temporal, leave-last-out, random per-user holdout, strong, and
cold-start (items never seen in training).

Every split returns the pairs a model may train on and the pairs it is judged on, over the
vocabularies of the whole dataset. In the weak protocols a test user's training pairs are
their history at test time; in the strong one (Liang et al. 2018; Rendle et al. 2022) test
users are absent from training and their `fold_in` pairs are handed to the model at test
time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from penchant.data.dataset import Dataset
from penchant.errors import InvalidInput

Protocol = Literal["temporal", "leave-last-out", "holdout", "strong", "cold-start"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True, eq=False)
class Split:
    """The result of a split.

    Attributes:
        protocol: the protocol's name.
        train: what models fit on.
        test: the held-out pairs, each a relevant item for its user; only pairs of users who
            have a history (training pairs, or `fold_in` pairs in the strong protocol) and
            of items that user has not met before.
        fold_in: the strong protocol's test-time history of the test users (else None).
        info: counts a report shows (users and pairs dropped, cut-off time...).
        candidates: the only item codes models may rank (the cold-start protocol's cold
            items; None: every item).
    """

    protocol: str
    train: Dataset
    test: Dataset
    fold_in: Dataset | None = None
    info: dict[str, int | float | str] = field(default_factory=dict)
    candidates: np.ndarray[Any, np.dtype[np.int64]] | None = None

    def with_recency(self, half_life_days: float | None) -> Split:
        """The split with recency-weighted training and fold-in pairs (`Dataset.with_recency`).

        Each part is weighted from its own times only; the test pairs are unchanged.
        """
        if half_life_days is None:
            return self
        fold_in = None if self.fold_in is None else self.fold_in.with_recency(half_life_days)
        return Split(
            self.protocol,
            self.train.with_recency(half_life_days),
            self.test,
            fold_in,
            {**self.info, "recency_half_life_days": half_life_days},
            self.candidates,
        )

    @property
    def history(self) -> Dataset:
        """What the test users are known to have consumed when they are recommended to."""
        return self.fold_in if self.fold_in is not None else self.train


def split(
    data: Dataset,
    protocol: str,
    *,
    test_fraction: float = 0.2,
    test_users: float = 0.1,
    rng: np.random.Generator | int | None = 0,
) -> Split:
    """Split by the named protocol.

    Args:
        data: the pairs.
        protocol: `temporal`, `leave-last-out`, `holdout`, `strong` or `cold-start`.
        test_fraction: `temporal`: the newest fraction of pairs by time; `holdout` and
            `strong`: the fraction of each (test) user's pairs held out; `cold-start`: the
            fraction of the items held out whole.
        test_users: `strong`: the fraction of users held out whole.
        rng: seed or generator for the random protocols.

    Raises:
        InvalidInput: an unknown protocol, a fraction outside (0, 1), or a split that leaves
            nothing to train or test on.
    """
    if not 0 < test_fraction < 1:
        raise InvalidInput(f"test_fraction: must be between 0 and 1, got {test_fraction}")
    gen = np.random.default_rng(rng)
    if protocol == "temporal":
        return temporal_split(data, test_fraction)
    if protocol == "leave-last-out":
        return leave_last_out(data)
    if protocol == "holdout":
        return holdout_split(data, test_fraction, gen)
    if protocol == "strong":
        return strong_split(data, test_users, test_fraction, gen)
    if protocol == "cold-start":
        return cold_start_split(data, test_fraction, gen)
    raise InvalidInput(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def temporal_split(data: Dataset, test_fraction: float = 0.2) -> Split:
    """Everything before one global cut-off trains; the newest `test_fraction` of pairs tests.

    A pair's time is its first event, so an item a user came back to after the cut-off is
    history, not a new item to predict. Test pairs of users with no pair before the cut-off
    are dropped (no history to recommend from), and counted in `info`.
    """
    if len(data) < 2:
        raise InvalidInput("temporal split: needs at least 2 interactions")
    order = np.argsort(data.first_ts, kind="stable")
    n_test = max(1, round(len(data) * test_fraction))
    cutoff = int(data.first_ts[order[len(data) - n_test]])
    is_test = data.first_ts >= cutoff
    if is_test.all():
        raise InvalidInput("temporal split: every interaction has the same time; use holdout")
    return _finish("temporal", data, ~is_test, is_test, info={"cutoff_us": cutoff})


def leave_last_out(data: Dataset) -> Split:
    """Each user's newest item tests; users with a single item only train.

    Ties in time go to the pair stored last, so the split is deterministic.
    """
    order = np.lexsort((np.arange(len(data)), data.first_ts, data.users))
    users_sorted = data.users[order]
    last_of_user = np.r_[users_sorted[1:] != users_sorted[:-1], True]
    counts = data.user_counts[users_sorted]
    is_test = np.zeros(len(data), dtype=bool)
    is_test[order[last_of_user & (counts >= 2)]] = True
    return _finish("leave-last-out", data, ~is_test, is_test)


def holdout_split(data: Dataset, test_fraction: float, rng: np.random.Generator) -> Split:
    """A random `test_fraction` of each user's items tests (at least one, never all).

    Users with a single item only train.
    """
    is_test = _per_user_sample(data, np.ones(len(data), dtype=bool), test_fraction, rng)
    return _finish("holdout", data, ~is_test, is_test)


def strong_split(
    data: Dataset, test_users: float, test_fraction: float, rng: np.random.Generator
) -> Split:
    """Hold out whole users; a `test_fraction` of each one's items tests, the rest folds in.

    Models never see the held-out users in training: at test time they get the `fold_in`
    pairs as the user's history (Liang et al. 2018, "Variational autoencoders for
    collaborative filtering"; Rendle et al. 2022 on strong generalization).
    """
    if not 0 < test_users < 1:
        raise InvalidInput(f"test_users: must be between 0 and 1, got {test_users}")
    eligible = np.flatnonzero(data.user_counts >= 2)
    n_held = round(data.n_users * test_users)
    if len(eligible) < 2 or n_held < 1:
        raise InvalidInput("strong split: too few users with two or more items")
    held_users = rng.choice(eligible, size=min(n_held, len(eligible) - 1), replace=False)
    held = np.zeros(data.n_users, dtype=bool)
    held[held_users] = True
    of_held = held[data.users]
    is_test = _per_user_sample(data, of_held, test_fraction, rng)
    fold_in = data.subset(of_held & ~is_test)
    split_ = _finish("strong", data, ~of_held, is_test, fold_in=fold_in)
    split_.info["held_out_users"] = int(held.sum())
    return split_


def cold_start_split(data: Dataset, cold_fraction: float, rng: np.random.Generator) -> Split:
    """Hold out a random `cold_fraction` of the items whole: no pair of theirs trains, every
    pair of theirs tests, and models rank those cold items only (`Split.candidates`).

    What it measures is whether a model can place items it never saw interactions of (from
    their text, say) in front of the people who took them. Test pairs of users with no
    training pair are dropped, as in the other protocols.
    """
    seen = np.flatnonzero(data.item_counts > 0)
    n_cold = round(len(seen) * cold_fraction)
    if n_cold < 1 or n_cold >= len(seen):
        raise InvalidInput(
            f"cold-start split: {cold_fraction} of {len(seen)} items leaves no cold item "
            "or no item to train on"
        )
    cold = np.sort(rng.choice(seen, size=n_cold, replace=False)).astype(np.int64)
    is_cold = np.zeros(data.n_items, dtype=bool)
    is_cold[cold] = True
    is_test = is_cold[data.items]
    split_ = _finish("cold-start", data, ~is_test, is_test)
    split_.info["cold_items"] = int(n_cold)
    return Split(split_.protocol, split_.train, split_.test, None, split_.info, cold)


def _per_user_sample(
    data: Dataset, among: BoolArray, fraction: float, rng: np.random.Generator
) -> BoolArray:
    """A random `fraction` of each user's pairs within `among` (>= 1 and < all of them)."""
    index = np.flatnonzero(among)
    users = data.users[index]
    order = np.lexsort((rng.random(len(index)), users))
    users_sorted = users[order]
    starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(users_sorted)])
    rank = np.arange(len(users_sorted)) - np.repeat(starts, sizes)
    n_pick = np.where(sizes >= 2, np.clip(np.rint(sizes * fraction), 1, sizes - 1), 0)
    picked = rank < np.repeat(n_pick, sizes)
    out = np.zeros(len(data), dtype=bool)
    out[index[order[picked]]] = True
    return out


def _finish(
    protocol: str,
    data: Dataset,
    is_train: BoolArray,
    is_test: BoolArray,
    *,
    fold_in: Dataset | None = None,
    info: dict[str, int | float | str] | None = None,
) -> Split:
    """Drop test pairs that cannot be judged and count what was dropped."""
    train = data.subset(is_train)
    history = fold_in if fold_in is not None else train
    has_history = np.bincount(history.users, minlength=data.n_users) > 0
    keep = is_test & has_history[data.users]
    test = data.subset(keep)
    if len(train) == 0 or len(test) == 0:
        raise InvalidInput(f"{protocol} split: leaves nothing to train or nothing to test on")
    counts: dict[str, int | float | str] = {
        "train_pairs": len(train),
        "test_pairs": len(test),
        "test_users": int(np.unique(test.users).size),
        "dropped_test_pairs_no_history": int(is_test.sum() - keep.sum()),
        "test_items_unseen_in_train": int(
            np.isin(np.unique(test.items), np.unique(train.items), invert=True).sum()
        ),
    }
    return Split(protocol, train, test, fold_in, {**(info or {}), **counts})
