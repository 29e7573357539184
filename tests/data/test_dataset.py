"""`Dataset`: construction checks, the matrix, counts, id lookups, subsets and the CSV export."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset
from penchant.errors import InvalidInput

SECOND = 1_000_000


def sample() -> Dataset:
    """Three users (one with no pairs) over four items (one never used)."""
    return Dataset.from_arrays(
        user_ids=["ann", "bo", "idle"],
        item_ids=["x", "y", "z", "never"],
        users=np.array([0, 0, 1, 1, 1]),
        items=np.array([2, 0, 0, 1, 2]),
        weights=np.array([1.5, 2.0, 0.5, 4.0, 1.0]),
        first_ts=np.array([30, 10, 20, 5, 40]) * SECOND,
        last_ts=np.array([31, 15, 20, 9, 45]) * SECOND,
    )


# -- from_arrays ---------------------------------------------------------------------------------
def test_from_arrays_types_and_defaults() -> None:
    data = Dataset.from_arrays(["a", "b"], ["x"], users=np.array([1, 0]), items=np.array([0, 0]))

    assert (data.n_users, data.n_items, len(data)) == (2, 1, 2)
    assert data.users.dtype == np.int32 and data.items.dtype == np.int32
    assert data.weights.dtype == np.float32 and data.weights.tolist() == [1.0, 1.0]
    assert data.first_ts.dtype == np.int64 and data.first_ts.tolist() == [0, 0]
    assert data.last_ts.dtype == np.int64 and data.last_ts.tolist() == [0, 0]
    assert data.user_ids.tolist() == ["a", "b"] and data.item_ids.tolist() == ["x"]


def test_last_ts_defaults_to_first_ts() -> None:
    data = Dataset.from_arrays(
        ["a"], ["x", "y"], np.array([0, 0]), np.array([0, 1]), first_ts=np.array([7, 9])
    )

    assert data.last_ts.tolist() == [7, 9]


def test_an_empty_dataset_is_allowed() -> None:
    data = Dataset.from_arrays(["a"], ["x"], np.array([], int), np.array([], int))

    assert len(data) == 0
    assert data.matrix.shape == (1, 1) and data.matrix.nnz == 0
    assert data.item_counts.tolist() == [0] and data.user_counts.tolist() == [0]


@pytest.mark.parametrize("name", ["items", "weights", "first_ts"])
def test_arrays_of_another_length_are_named(name: str) -> None:
    arrays = {"items": np.array([0, 0]), "weights": np.ones(2), "first_ts": np.zeros(2)}
    arrays[name] = np.zeros(3)

    with pytest.raises(InvalidInput, match=f"{name}: 3 values for 2"):
        Dataset.from_arrays(["a", "b"], ["x"], users=np.array([0, 1]), **arrays)


def test_last_ts_of_another_length_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="last_ts"):
        Dataset.from_arrays(["a"], ["x"], np.array([0]), np.array([0]), last_ts=np.array([1, 2, 3]))


@pytest.mark.parametrize(
    ("users", "items"),
    [([0, 2], [0, 0]), ([-1, 0], [0, 0]), ([0, 1], [0, 1]), ([0, 1], [-1, 0])],
    ids=["user-too-big", "user-negative", "item-too-big", "item-negative"],
)
def test_codes_outside_the_vocabularies_are_rejected(users: list[int], items: list[int]) -> None:
    with pytest.raises(InvalidInput, match="outside its vocabulary"):
        Dataset.from_arrays(["a", "b"], ["x"], np.array(users), np.array(items))


# -- matrix and counts ---------------------------------------------------------------------------
def test_matrix_holds_each_weight_at_its_pair() -> None:
    data = sample()
    m = data.matrix

    assert isinstance(m, sp.csr_matrix) and m.dtype == np.float32
    assert m.shape == (3, 4) and m.nnz == 5 and m.has_sorted_indices
    np.testing.assert_array_equal(
        m.toarray(),
        np.array([[2.0, 0.0, 1.5, 0.0], [0.5, 4.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]),
    )
    assert data.matrix is m  # computed once


def test_counts_are_distinct_pairs_per_code() -> None:
    data = sample()

    assert data.item_counts.tolist() == [2, 1, 2, 0]
    assert data.user_counts.tolist() == [2, 3, 0]
    assert data.item_counts.dtype == np.int64 and data.user_counts.dtype == np.int64


# -- id lookups ----------------------------------------------------------------------------------
def test_codes_of_known_and_unknown_ids() -> None:
    data = sample()

    assert data.user_codes(["bo", "stranger", "ann", "bo"]).tolist() == [1, -1, 0, 1]
    assert data.item_codes(["never", "x", "", "Z"]).tolist() == [3, 0, -1, -1]
    assert data.user_codes([]).tolist() == []
    assert data.item_codes(["z"]).dtype == np.int64


# -- subset --------------------------------------------------------------------------------------
def test_subset_keeps_the_vocabularies_and_the_rows() -> None:
    data = sample()
    mask = np.array([True, False, False, True, True])

    part = data.subset(mask)

    assert part.user_ids is data.user_ids and part.item_ids is data.item_ids
    assert part.users.tolist() == [0, 1, 1] and part.items.tolist() == [2, 1, 2]
    assert part.weights.tolist() == [1.5, 4.0, 1.0]
    assert part.first_ts.tolist() == [30 * SECOND, 5 * SECOND, 40 * SECOND]
    assert part.last_ts.tolist() == [31 * SECOND, 9 * SECOND, 45 * SECOND]
    assert part.matrix.shape == data.matrix.shape
    assert part.item_counts.tolist() == [0, 1, 2, 0]
    assert len(data.subset(np.zeros(5, dtype=bool))) == 0


# -- write_csv -----------------------------------------------------------------------------------
def test_write_csv_round_trip(tmp_path: Path) -> None:
    data = Dataset.from_arrays(
        user_ids=["plain", 'quote"d', "comma,user", "ünï"],
        item_ids=["i,1", "i 2", "i\n3"],
        users=np.array([3, 0, 2, 0, 1, 2]),
        items=np.array([0, 2, 1, 1, 0, 0]),
        weights=np.array([0.5, 1.0, 2.25, 3.0, 1 / 3, 7.0]),
        first_ts=np.array([5, 9, 3, 4, 1, 3]) * SECOND + 999_999,
    )
    path = tmp_path / "nested" / "dir" / "pairs.csv"

    data.write_csv(path)

    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["user", "item", "weight", "timestamp"]
    # by user code, then time, then item code; times floored to seconds
    assert [(u, i, int(t)) for u, i, _w, t in rows] == [
        ("plain", "i 2", 4),
        ("plain", "i\n3", 9),
        ('quote"d', "i,1", 1),
        ("comma,user", "i,1", 3),
        ("comma,user", "i 2", 3),
        ("ünï", "i,1", 5),
    ]
    weights = [float(w) for _u, _i, w, _t in rows]
    assert weights == pytest.approx([3.0, 1.0, 1 / 3, 7.0, 2.25, 0.5], rel=1e-6)


def test_write_csv_of_an_empty_dataset_is_just_the_header(tmp_path: Path) -> None:
    data = Dataset.from_arrays(["a"], ["x"], np.array([], int), np.array([], int))
    path = tmp_path / "empty.csv"

    data.write_csv(path)

    assert path.read_text(encoding="utf-8").splitlines() == ["user,item,weight,timestamp"]


def test_id_index_agrees_with_a_dict_lookup() -> None:
    from penchant.data.dataset import IdIndex

    gen = np.random.default_rng(3)
    vocabulary = np.array([f"u{n}" for n in gen.permutation(500)] + ["", "é", "u1 "])
    queries = [f"u{n}" for n in gen.integers(0, 700, 300)] + ["u1 ", "é", "", "zz", "u0x"]
    expected = {v: i for i, v in enumerate(vocabulary.tolist())}
    codes = IdIndex(vocabulary).codes(queries)
    assert codes.tolist() == [expected.get(q, -1) for q in queries]
    assert IdIndex(vocabulary).codes([]).tolist() == []
    assert IdIndex(np.array([], dtype=np.str_)).codes(["a"]).tolist() == [-1]
