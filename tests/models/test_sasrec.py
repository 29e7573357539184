"""SASRec: the shared contract, next-item known answers, sequences, artifacts and erasure."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("torch", reason="SASRec needs torch: pip install 'penchant[deep]'")

from penchant.data import Dataset
from penchant.data.splits import leave_last_out
from penchant.errors import ConfigError, InvalidInput
from penchant.models import Popular, Recommender, load_model
from penchant.models.arrays import scrub_user
from penchant.models.sasrec import SASRec, training_windows
from penchant.testing import RecommenderContract
from penchant.testing.synthetic import planted_blocks

FAST: dict[str, Any] = {
    "max_len": 20,
    "dim": 16,
    "blocks": 2,
    "dropout": 0.2,
    "epochs": 10,
    "batch_size": 16,
    "learning_rate": 0.01,
    "negatives": 16,
    "threads": 1,
}


def shuffled_blocks() -> Dataset:
    """`planted_blocks` with each user's items in a random order.

    `planted_blocks` times each user's items in ascending code order, so a sequence model
    learns "the next code up" and has nothing to predict after a user's highest item (on it
    SASRec puts the right group first for only 50-90% of users). The planted preference is
    co-consumption; a random order keeps it and drops the spurious walk.
    """
    base = planted_blocks()
    order = np.random.default_rng(0).permutation(len(base))
    return dataclasses.replace(base, first_ts=base.first_ts[order])


class TestSASRec(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [
        {"max_len": 3},
        {"dim": 8},
        {"blocks": 1},
        {"heads": 2},
        {"dropout": 0.0},
        {"epochs": 4},
        {"batch_size": 8},
        {"learning_rate": 0.003},
        {"negatives": 8},
        {"gbce_t": 0.0},
        {"rng": 7},
    ]

    @pytest.fixture
    def data(self) -> Dataset:
        return shuffled_blocks()

    def make_model(self) -> Recommender:
        return SASRec(**FAST)


# -- next-item known answers -------------------------------------------------------------------
def cycle_walks(n_users: int = 300, n_items: int = 40, rng: int = 0) -> Dataset:
    """Each user walks forward through a cycle of items from a random start, 8-15 steps."""
    gen = np.random.default_rng(rng)
    users, items, times = [], [], []
    for user in range(n_users):
        steps = int(gen.integers(8, 16))
        walk = (int(gen.integers(n_items)) + np.arange(steps)) % n_items
        users += [user] * steps
        items += walk.tolist()
        times += list(range(steps))
    return Dataset.from_arrays(
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        users=np.asarray(users),
        items=np.asarray(items),
        first_ts=np.asarray(times, dtype=np.int64) * 1_000_000,
    )


CYCLE = {**FAST, "batch_size": 32}


@pytest.fixture(scope="module")
def walks() -> tuple[Dataset, Dataset, SASRec]:
    """The walks, their leave-last-out training pairs, and SASRec fitted on those."""
    data = cycle_walks()
    train = leave_last_out(data).train
    return data, train, SASRec(**CYCLE).fit(train)


def hit_rate(model: Recommender, data: Dataset, k: int = 10) -> float:
    the_split = leave_last_out(data)
    test = the_split.test.matrix
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    codes, _ = model.rank(users, the_split.train.matrix[users], k=k)
    truth = test.indices[test.indptr[users]]
    return float((codes == truth[:, None]).any(axis=1).mean())


def test_next_item_of_a_walk_is_found(walks: tuple[Dataset, Dataset, SASRec]) -> None:
    data, train, model = walks
    sasrec = hit_rate(model, data)
    popular = hit_rate(Popular().fit(train), data)
    assert sasrec >= 0.9
    assert sasrec >= popular + 0.4


def test_direction_is_learned(walks: tuple[Dataset, Dataset, SASRec]) -> None:
    """The same pairs in reverse time order: a bag-of-items model could not tell them apart."""
    data, train, forward = walks
    backward = SASRec(**CYCLE).fit(dataclasses.replace(train, first_ts=-train.first_ts))
    users = np.arange(data.n_users)
    ahead, _ = forward.rank(users, k=1)
    behind, _ = backward.rank(users, k=1)
    walk = [
        train.items[train.users == u][np.argsort(train.first_ts[train.users == u])] for u in users
    ]
    after_last = np.array([(w[-1] + 1) % data.n_items for w in walk])
    before_first = np.array([(w[0] - 1) % data.n_items for w in walk])
    assert (ahead[:, 0] == after_last).mean() >= 0.9
    assert (behind[:, 0] == before_first).mean() >= 0.9


def test_training_windows_cover_every_target_once() -> None:
    """Sequences of 1, 2, 4 and 8 items (codes 10...) cut into windows of 3 targets."""
    lengths = [1, 2, 4, 8]
    indptr = np.r_[0, np.cumsum(lengths)]
    indices = np.arange(10, 10 + sum(lengths))  # the item codes, one row after another
    inputs, targets = training_windows(indptr, indices, np.array([1, 2, 3]), 3)
    # stored +1 (0 is padding): row 1 is (12, 13), row 2 is 14..17, row 3 is 18..25
    expected = {
        ((0, 0, 12), (0, 0, 13)),  # row 1: its one target
        ((14, 15, 16), (15, 16, 17)),  # row 2: its three targets
        ((22, 23, 24), (23, 24, 25)),  # row 3: the latest three of its seven targets,
        ((19, 20, 21), (20, 21, 22)),  # the three before them
        ((0, 0, 18), (0, 0, 19)),  # and its first
    }
    got = {(tuple(x), tuple(y)) for x, y in zip(inputs.tolist(), targets.tolist(), strict=True)}
    assert got == expected
    assert len(inputs) == 5


def test_early_targets_of_a_long_history_are_learned() -> None:
    """Transitions seen only early in long histories are learned, not just the latest ones.

    Each user walks 10 steps through a cycle of items 0-19, then 12 steps through a cycle
    of items 20-39; `max_len` is 5, so the latest window alone never holds a step of the
    first cycle.
    """
    gen = np.random.default_rng(1)
    users, items = [], []
    for user in range(200):
        first = (int(gen.integers(20)) + np.arange(10)) % 20
        second = 20 + (int(gen.integers(20)) + np.arange(12)) % 20
        users += [user] * 22
        items += [*first.tolist(), *second.tolist()]
    data = Dataset.from_arrays(
        user_ids=[f"u{u}" for u in range(200)],
        item_ids=[f"i{i}" for i in range(40)],
        users=np.asarray(users),
        items=np.asarray(items),
        first_ts=np.tile(np.arange(22, dtype=np.int64), 200) * 1_000_000,
    )
    model = SASRec(**{**CYCLE, "max_len": 5}).fit(data)
    starts = np.arange(20)
    walks = [(start + np.arange(3)) % 20 for start in starts]
    best = model.score_sequences(walks).argmax(axis=1)
    assert (best == (starts + 3) % 20).mean() >= 0.9


# -- sequences ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> SASRec:
    return SASRec(**FAST).fit(shuffled_blocks())


def stored(model: SASRec, user: int) -> np.ndarray[Any, Any]:
    return model.seq_indices_[model.seq_indptr_[user] : model.seq_indptr_[user + 1]]


def test_score_sequences_agrees_with_rank(model: SASRec) -> None:
    data = shuffled_blocks()
    for user in (0, 1, 7):
        seq = stored(model, user)
        assert sorted(seq.tolist()) == sorted(data.matrix[user].indices.tolist())
        block = model.score_sequences([seq])
        np.testing.assert_allclose(block, model.scores(np.array([user]), data.matrix[user]))
        block[0, seq] = -np.inf
        codes, _ = model.rank(np.array([user]), k=5)
        assert codes[0].tolist() == np.argsort(-block[0], kind="stable")[:5].tolist()


def test_order_of_a_sequence_matters(model: SASRec) -> None:
    seq = stored(model, 0)
    forward, backward = model.score_sequences([seq, seq[::-1]])
    assert not np.allclose(forward, backward)


def test_a_history_row_is_ordered_by_its_values(model: SASRec) -> None:
    """A recency-weighted history puts the newest item last; ties go by item code."""
    items = np.array([4, 10, 2, 6])
    weights = np.array([0.5, 0.1, 0.5, 0.9], dtype=np.float32)
    row = sp.csr_matrix((weights, (np.zeros(4, dtype=int), items)), shape=(1, model.item_ids_.size))
    expected = model.score_sequences([np.array([10, 2, 4, 6])])
    np.testing.assert_allclose(model.scores(np.array([-1]), row), expected)


def test_score_sequences_edges(model: SASRec) -> None:
    empty, unknown_only, long = model.score_sequences(
        [np.array([], dtype=np.int64), np.array([-1]), np.arange(30) % 40]
    )
    np.testing.assert_array_equal(empty, model.popularity_)
    np.testing.assert_array_equal(unknown_only, model.popularity_)
    # only the last max_len items count
    np.testing.assert_allclose(long, model.score_sequences([np.arange(10, 30)])[0], rtol=1e-5)
    with pytest.raises(InvalidInput, match="item code"):
        model.score_sequences([np.array([0, 40])])


def test_training_progress_is_reported() -> None:
    seen: list[tuple[int, float]] = []
    model = SASRec(**{**FAST, "epochs": 3})
    model.on_epoch = lambda epoch, loss: seen.append((epoch, loss))
    model.fit(shuffled_blocks())
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [loss for _, loss in seen] == model.losses_
    assert len(model.epoch_seconds_) == 3
    assert "on_epoch" not in model.get_params()


# -- determinism, artifacts, erasure -----------------------------------------------------------
def test_same_seed_same_scores_other_seed_other_scores(model: SASRec) -> None:
    data = shuffled_blocks()
    users = np.arange(data.n_users)
    again = SASRec(**FAST).fit(data)
    other = SASRec(**{**FAST, "rng": 1}).fit(data)
    base = model.scores(users, data.matrix)
    np.testing.assert_array_equal(again.scores(users, data.matrix), base)
    assert not np.allclose(other.scores(users, data.matrix), base)


def test_saved_and_loaded_scores_are_identical(model: SASRec, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, SASRec)
    seqs = [stored(model, u) for u in range(6)]
    np.testing.assert_array_equal(loaded.score_sequences(seqs), model.score_sequences(seqs))
    assert loaded.losses_ == pytest.approx(model.losses_)
    np.testing.assert_array_equal(
        loaded.item_similarity(np.array([0, 1]), np.arange(5)),
        model.item_similarity(np.array([0, 1]), np.arange(5)),
    )


def test_forget_user_empties_their_sequence() -> None:
    model = SASRec(**{**FAST, "epochs": 2}).fit(shuffled_blocks())
    before = [stored(model, u).copy() for u in range(model.user_ids_.size)]
    assert model.forget_user("u3")
    assert stored(model, 3).size == 0
    for user, seq in enumerate(before):
        if user != 3:
            np.testing.assert_array_equal(stored(model, user), seq)
    cold = model.scores(np.array([-1]), sp.csr_matrix((1, model.item_ids_.size)))
    np.testing.assert_array_equal(model.scores(np.array([3]), model.history_[3]), cold)


def test_scrubbed_artifact_no_longer_holds_the_sequence(tmp_path: Path) -> None:
    model = SASRec(**{**FAST, "epochs": 2}).fit(shuffled_blocks())
    code = int(model.user_codes(["u3"])[0])
    start, end = model.seq_indptr_[code], model.seq_indptr_[code + 1]
    assert end > start
    model.save(tmp_path / "m")
    assert scrub_user(tmp_path / "m", "u3") == 1
    on_disk = np.load(tmp_path / "m" / "arrays" / "seq_indices.npy")
    assert not on_disk[start:end].any()
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, SASRec)
    assert stored(loaded, code).size == 0
    assert loaded.history_[code].nnz == 0
    for user in (0, 1, 5):
        np.testing.assert_array_equal(stored(loaded, user), stored(model, user))


# -- hyperparameters ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("max_len", 0),
        ("dim", 0),
        ("blocks", 0),
        ("heads", 3),
        ("dropout", 1.0),
        ("epochs", 0),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("negatives", 0),
        ("gbce_t", 1.5),
        ("rng", "seven"),
        ("threads", 0),
        ("dim", 2.5),
    ],
)
def test_invalid_hyperparameters_are_named(param: str, value: Any) -> None:
    with pytest.raises(InvalidInput, match=param) as raised:
        SASRec(**{**FAST, param: value}).fit(shuffled_blocks())
    assert raised.value.field == param


def test_without_torch_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ConfigError, match=r"penchant\[deep\]"):
        SASRec(**FAST).fit(shuffled_blocks())
