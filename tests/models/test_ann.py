"""ItemIndex: exact search is brute force; the approximate one finds the exact top 100."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.errors import InvalidInput
from penchant.models import ann
from penchant.models.ann import ItemIndex

Floats = np.ndarray[Any, np.dtype[np.float32]]
Codes = np.ndarray[Any, np.dtype[np.int64]]
NO_FAISS = "faiss-cpu is not installed (pip install 'penchant[ann]')"


def mixture(n_items: int, dim: int, n_queries: int, rng: int) -> tuple[Floats, Floats]:
    """Items and users from 32 tastes in a rank-16 subspace, item norms varying like factors'."""
    gen = np.random.default_rng(rng)
    basis = gen.normal(size=(16, dim)) / 4.0
    tastes = gen.normal(size=(32, 16))

    def draw(n: int) -> Floats:
        latent = tastes[gen.integers(0, 32, n)] + 0.6 * gen.normal(size=(n, 16))
        return np.asarray(latent @ basis + 0.3 * gen.normal(size=(n, dim)), dtype=np.float32)

    items = draw(n_items) * gen.lognormal(0.0, 0.3, size=(n_items, 1)).astype(np.float32)
    return items, draw(n_queries)


def brute_force(
    items: Floats, queries: Floats, n: int, exclude: sp.csr_matrix | None = None
) -> tuple[Codes, Floats]:
    """The top n by a full sort (ties by item code), excluded items scored -inf."""
    scores = queries @ items.T
    if exclude is not None:
        scores[exclude.nonzero()] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    return order.astype(np.int64), np.take_along_axis(scores, order, axis=1)


def recall(found: Codes, truth: Codes) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def random_exclusions(rows: int, n_items: int, per_row: int, rng: int) -> sp.csr_matrix:
    gen = np.random.default_rng(rng)
    cols = np.concatenate([gen.choice(n_items, per_row, replace=False) for _ in range(rows)])
    data = np.ones(len(cols), dtype=np.float32)
    return sp.csr_matrix((data, (np.repeat(np.arange(rows), per_row), cols)), (rows, n_items))


def assert_none_excluded(codes: Codes, exclude: sp.csr_matrix) -> None:
    rows = np.repeat(np.arange(codes.shape[0]), codes.shape[1])
    assert not np.asarray(exclude[rows, codes.ravel()]).any()


# -- exact path (always runs) -------------------------------------------------------------------
def test_exact_search_is_brute_force() -> None:
    items, queries = mixture(800, 16, 30, rng=1)
    index = ItemIndex.build(items)
    assert index.exact and index.kind == "exact" and index.fallback_reason is None
    assert (index.n_items, index.dim) == (800, 16)
    codes, scores = index.search(queries, 25)
    expected, expected_scores = brute_force(items, queries, 25)
    assert codes.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(codes, expected)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)


def test_exact_search_pads_a_short_catalog() -> None:
    items, queries = mixture(5, 4, 3, rng=2)
    codes, scores = ItemIndex.build(items).search(queries, 8)
    assert codes.shape == (3, 8)
    assert (codes[:, :5] >= 0).all() and (codes[:, 5:] == -1).all()
    assert np.isneginf(scores[:, 5:]).all()


def test_exact_exclusion_keeps_lists_full() -> None:
    items, queries = mixture(400, 8, 20, rng=3)
    exclude = random_exclusions(20, 400, per_row=60, rng=4)
    codes, _ = ItemIndex.build(items).search(queries, 30, exclude=exclude)
    assert_none_excluded(codes, exclude)
    assert (codes >= 0).all()
    np.testing.assert_array_equal(codes, brute_force(items, queries, 30, exclude)[0])


@pytest.mark.parametrize("method", ["exact", "pq"])
@pytest.mark.parametrize("fmt", ["coo", "csr", "csr_matrix"])
def test_only_nonzero_entries_exclude_in_any_sparse_format(method: str, fmt: str) -> None:
    if method != "exact":
        pytest.importorskip("faiss", reason=NO_FAISS)
    items, queries = mixture(2000, 16, 2, rng=16)
    index = ItemIndex.build(items, method=method, min_items=0)
    top = brute_force(items, queries, 3)[0]
    # row 0: its best item twice (duplicates add up), its second best as a stored zero
    rows, cols = np.array([0, 0, 0, 1]), np.array([top[0, 0], top[0, 0], top[0, 1], top[1, 2]])
    data = np.array([1.0, 1.0, 0.0, 5.0])
    coo = sp.coo_array((data, (rows, cols)), shape=(2, 2000))
    exclude = {"coo": coo, "csr": sp.csr_array(coo), "csr_matrix": sp.csr_matrix(coo)}[fmt]
    codes, _ = index.search(queries, 5, exclude=exclude)
    assert top[0, 0] not in codes[0] and top[1, 2] not in codes[1] and top[0, 1] in codes[0]
    assert (codes >= 0).all()
    if method == "exact":
        np.testing.assert_array_equal(codes, brute_force(items, queries, 5, sp.csr_matrix(coo))[0])


def test_min_items_chooses_the_exact_path_below_it() -> None:
    items, _ = mixture(1000, 8, 1, rng=5)
    assert ItemIndex.build(items, min_items=1001).exact
    assert ItemIndex.build(items, method="exact", min_items=0).exact


@pytest.mark.parametrize("method", ["auto", "pq", "hnsw", "ivf"])
def test_a_tiny_catalog_is_searched_exactly(method: str) -> None:
    items, queries = mixture(10, 8, 3, rng=15)
    index = ItemIndex.build(items, method=method, min_items=0)
    assert index.exact and index.fallback_reason is None
    np.testing.assert_array_equal(index.search(queries, 4)[0], brute_force(items, queries, 4)[0])


def test_without_faiss_an_approximate_index_searches_exactly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ann, "_faiss", lambda: None)
    items, queries = mixture(300, 8, 5, rng=6)
    with caplog.at_level(logging.WARNING, logger="penchant.models.ann"):
        index = ItemIndex.build(items, method="pq")
    assert index.exact and index.fallback_reason and "faiss" in caplog.text
    np.testing.assert_array_equal(index.search(queries, 10)[0], brute_force(items, queries, 10)[0])


def test_exact_index_round_trips(tmp_path: Path) -> None:
    items, queries = mixture(300, 8, 10, rng=7)
    index = ItemIndex.build(items)
    index.save(tmp_path / "index")
    back = ItemIndex.load(tmp_path / "index")
    assert back.kind == "exact"
    for got, want in zip(back.search(queries, 10), index.search(queries, 10), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: ItemIndex.build(np.array([[1.0, np.nan], [0.0, 1.0]])), "vectors"),
        (lambda: ItemIndex.build(np.array([[1.0, np.inf]])), "vectors"),
        (lambda: ItemIndex.build(np.ones(4)), "vectors"),
        (lambda: ItemIndex.build(np.ones((0, 4))), "vectors"),
        (lambda: ItemIndex.build(np.array([["a", "b"]])), "vectors"),
        (lambda: ItemIndex.build(np.ones((3, 4)), method="annoy"), "method"),
        (lambda: ItemIndex.build(np.ones((3, 4)), threads=0), "threads"),
        (lambda: ItemIndex.build(np.ones((3, 4))).search(np.ones((2, 5)), 3), "queries"),
        (lambda: ItemIndex.build(np.ones((3, 4))).search(np.full((1, 4), np.nan), 3), "queries"),
        (lambda: ItemIndex.build(np.ones((3, 4))).search(np.ones((2, 4)), 0), "n"),
        (lambda: ItemIndex.build(np.ones((3, 4))).search(np.ones((2, 4)), -1), "n"),
        (
            lambda: ItemIndex.build(np.ones((3, 4))).search(
                np.ones((2, 4)), 2, exclude=sp.csr_matrix((2, 4))
            ),
            "exclude",
        ),
    ],
)
def test_bad_input_names_the_field(call: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        call()
    assert raised.value.field == field


# -- approximate path (needs faiss) -------------------------------------------------------------
Large = tuple[Floats, Floats, ItemIndex, Codes]


@pytest.fixture(scope="module")
def large() -> Large:
    """100,000 x 64 items, 200 queries, the `auto` index (HNSW) and the exact top 100."""
    pytest.importorskip("faiss", reason=NO_FAISS)
    items, queries = mixture(100_000, 64, 200, rng=0)
    return items, queries, ItemIndex.build(items), brute_force(items, queries, 100)[0]


def test_approximate_recall_at_100_against_exact(large: Large) -> None:
    items, queries, index, truth = large
    assert index.kind == "hnsw" and not index.exact
    codes, scores = index.search(queries, 100)
    assert recall(codes, truth) >= 0.95
    assert (np.diff(scores, axis=1) <= 0).all()
    exact_scores = np.einsum("bd,bnd->bn", queries, items[codes])  # flat vectors: exact scores
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-4, atol=1e-4)


def test_approximate_exclusion_keeps_lists_full(large: Large) -> None:
    items, queries, index, truth = large
    top = truth[:, :50]  # exclude each user's best 50 and 300 others
    rows = np.repeat(np.arange(len(queries)), 50)
    exclude = random_exclusions(len(queries), len(items), per_row=300, rng=8)
    best = sp.csr_matrix((np.ones(len(rows)), (rows, top.ravel())), shape=exclude.shape)
    exclude = sp.csr_matrix(exclude + best)
    codes, _ = index.search(queries, 100, exclude=exclude)
    assert_none_excluded(codes, exclude)
    assert (codes >= 0).all()
    assert recall(codes, brute_force(items, queries, 100, exclude)[0]) >= 0.95


@pytest.mark.parametrize("method", ["pq", "hnsw", "ivf"])
def test_more_excluded_than_overfetched_falls_back_to_exact(method: str) -> None:
    pytest.importorskip("faiss", reason=NO_FAISS)
    items, queries = mixture(3000, 16, 20, rng=9)
    index = ItemIndex.build(items, method=method, max_overfetch=0)
    exclude = sp.csr_matrix(
        (
            np.ones(20 * 40),
            (np.repeat(np.arange(20), 40), brute_force(items, queries, 40)[0].ravel()),
        ),
        shape=(20, 3000),
    )
    codes, _ = index.search(queries, 10, exclude=exclude)
    np.testing.assert_array_equal(codes, brute_force(items, queries, 10, exclude)[0])


@pytest.mark.parametrize(("method", "params"), [("pq", {}), ("hnsw", {}), ("ivf", {"nprobe": 32})])
def test_each_approximate_kind_finds_the_top(method: str, params: dict[str, int]) -> None:
    pytest.importorskip("faiss", reason=NO_FAISS)
    items, queries = mixture(5000, 32, 50, rng=10)
    # the method overrides min_items; ivf needs more probes when tastes overlap (module doc)
    index = ItemIndex.build(items, method=method, min_items=10**9, **params)
    assert index.kind == method
    assert recall(index.search(queries, 20)[0], brute_force(items, queries, 20)[0]) >= 0.9


def test_min_items_chooses_the_approximate_path_at_it() -> None:
    pytest.importorskip("faiss", reason=NO_FAISS)
    items, _ = mixture(1000, 8, 1, rng=5)
    assert ItemIndex.build(items, min_items=1000).kind == "hnsw"


@pytest.mark.parametrize("method", ["pq", "hnsw", "ivf"])
def test_approximate_index_round_trips_without_pickle(tmp_path: Path, method: str) -> None:
    pytest.importorskip("faiss", reason=NO_FAISS)
    items, queries = mixture(3000, 16, 30, rng=11)
    index = ItemIndex.build(items, method=method, ef_search=64, nprobe=4, k_factor=2)
    index.save(tmp_path)
    meta = json.loads((tmp_path / "index.json").read_text())
    assert meta["kind"] == method and meta["params"] == index.params
    with np.load(tmp_path / "index.npz", allow_pickle=False) as npz:
        assert npz["faiss"].dtype == np.uint8
    back = ItemIndex.load(tmp_path)
    assert (back.kind, back.params, back.threads) == (index.kind, index.params, index.threads)
    exclude = random_exclusions(30, 3000, per_row=20, rng=12)
    for got, want in zip(
        back.search(queries, 50, exclude=exclude),
        index.search(queries, 50, exclude=exclude),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


def test_a_saved_approximate_index_loads_as_exact_without_faiss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("faiss", reason=NO_FAISS)
    items, queries = mixture(500, 8, 5, rng=13)
    ItemIndex.build(items, method="pq").save(tmp_path)
    monkeypatch.setattr(ann, "_faiss", lambda: None)
    back = ItemIndex.load(tmp_path)
    assert back.exact and back.fallback_reason
    np.testing.assert_array_equal(back.search(queries, 10)[0], brute_force(items, queries, 10)[0])


def test_threads_are_restored_after_a_search() -> None:
    faiss = pytest.importorskip("faiss", reason=NO_FAISS)
    before = faiss.omp_get_max_threads()
    items, queries = mixture(2000, 8, 5, rng=14)
    ItemIndex.build(items, method="pq", threads=2).search(queries, 5)
    assert faiss.omp_get_max_threads() == before


# -- bounded path (exact, pure numpy) -----------------------------------------------------------
def skewed(n_items: int, dim: int, n_queries: int, rng: int) -> tuple[Floats, Floats]:
    """The mixture with item norms spread like a factor model's (popular items long)."""
    items, queries = mixture(n_items, dim, n_queries, rng)
    spread = np.random.default_rng(rng + 100).lognormal(0.0, 1.5, size=(n_items, 1))
    return np.asarray(items * spread, dtype=np.float32), queries


def allowed_mask(n_items: int, share: float, rng: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(rng).random(n_items) < share


def masked_truth(
    items: Floats, queries: Floats, n: int, allowed: Any, exclude: sp.csr_matrix | None = None
) -> tuple[Codes, Floats]:
    """Brute force with the items outside `allowed` excluded from every row."""
    banned = sp.csr_matrix(np.broadcast_to(~allowed, (len(queries), len(items))))
    if exclude is not None:
        banned = sp.csr_matrix(banned + exclude)
    return brute_force(items, queries, n, banned)


@pytest.mark.parametrize("spread", ["skewed", "unit"])
def test_bounded_search_is_exact(spread: str) -> None:
    items, queries = skewed(20_000, 32, 40, rng=20)
    if spread == "unit":  # nothing to prune: it scores every item, still exactly
        items = items / np.linalg.norm(items, axis=1, keepdims=True)
    index = ItemIndex.build(items, method="bounded")
    assert index.kind == "bounded" and index.exact
    exclude = random_exclusions(40, 20_000, per_row=500, rng=21)
    allowed = allowed_mask(20_000, 0.4, rng=22)
    for kwargs, want in [
        ({}, brute_force(items, queries, 100)),
        ({"exclude": exclude}, brute_force(items, queries, 100, exclude)),
        ({"allowed": allowed}, masked_truth(items, queries, 100, allowed)),
        (
            {"exclude": exclude, "allowed": allowed},
            masked_truth(items, queries, 100, allowed, exclude),
        ),
    ]:
        codes, scores = index.search(queries, 100, **kwargs)
        # the same items, but for float32 near-ties, which either order may break
        assert recall(codes, want[0]) >= 0.99
        own = np.einsum("bd,bnd->bn", queries, items[codes])
        np.testing.assert_allclose(own, want[1], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(scores, want[1], rtol=1e-5, atol=1e-5)
        if "allowed" in kwargs:
            assert allowed[codes].all()
        if "exclude" in kwargs:
            assert_none_excluded(codes, exclude)


def test_bounded_search_pads_when_too_few_items_are_allowed() -> None:
    items, queries = skewed(3000, 16, 5, rng=23)
    allowed = np.zeros(3000, dtype=bool)
    allowed[[5, 900, 2999]] = True
    codes, scores = ItemIndex.build(items, method="bounded").search(queries, 10, allowed=allowed)
    assert (np.sort(codes[:, :3], axis=1) == [5, 900, 2999]).all()
    assert (codes[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


def test_scan_share_is_small_for_skewed_norms_and_whole_for_unit_vectors() -> None:
    items, queries = skewed(20_000, 32, 64, rng=24)
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    skewed_share = ann.scan_share(items, queries, n=100)
    assert skewed_share < 0.25
    assert ann.scan_share(unit, queries, n=100) == 1.0
    # against a direct count: the items whose bound reaches each query's 100th best score
    scores = queries.astype(np.float64) @ items.T.astype(np.float64)
    threshold = -np.sort(-scores, axis=1)[:, 99]
    bound = np.linalg.norm(queries, axis=1)[:, None] * np.linalg.norm(items, axis=1)[None, :]
    direct = np.maximum((bound >= threshold[:, None]).sum(axis=1), 100) / len(items)
    assert skewed_share == pytest.approx(float(direct.mean()), rel=1e-3)


def test_auto_takes_bounded_only_when_the_queries_show_it_pays() -> None:
    pytest.importorskip("faiss", reason=NO_FAISS)
    items, queries = skewed(10_000, 16, 64, rng=25)  # a scan of about 16% of the items
    assert ItemIndex.build(items, min_items=1000, queries=queries).kind == "bounded"
    assert ItemIndex.build(items, min_items=1000).kind == "hnsw"  # no queries: no estimate
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    assert ItemIndex.build(unit, min_items=1000, queries=queries).kind == "hnsw"
    assert ItemIndex.build(items, min_items=1000, queries=queries, bounded_share=0.0).kind == (
        "hnsw"
    )


def test_bounded_index_round_trips(tmp_path: Path) -> None:
    items, queries = skewed(3000, 16, 20, rng=26)
    index = ItemIndex.build(items, method="bounded")
    index.save(tmp_path)
    back = ItemIndex.load(tmp_path)
    assert back.kind == "bounded"
    np.testing.assert_array_equal(back.search(queries, 30)[0], index.search(queries, 30)[0])


@pytest.mark.parametrize("method", ["pq", "hnsw", "ivf"])
def test_approximate_search_keeps_to_the_allowed_items(method: str) -> None:
    pytest.importorskip("faiss", reason=NO_FAISS)
    items, queries = mixture(5000, 32, 50, rng=27)
    allowed = allowed_mask(5000, 0.3, rng=28)
    index = ItemIndex.build(items, method=method, min_items=0, nprobe=32)
    codes, _ = index.search(queries, 20, allowed=allowed)
    assert (codes >= 0).all() and allowed[codes].all()
    assert recall(codes, masked_truth(items, queries, 20, allowed)[0]) >= 0.9


def test_allowed_of_the_wrong_shape_or_type_names_the_field() -> None:
    index = ItemIndex.build(np.ones((3, 4)), method="bounded")
    for bad in (np.ones(4, dtype=bool), np.ones(3)):
        with pytest.raises(InvalidInput) as raised:
            index.search(np.ones((1, 4)), 2, allowed=bad)
        assert raised.value.field == "allowed"
    with pytest.raises(InvalidInput) as raised:
        ItemIndex.build(np.ones((3, 4)), bounded_share=1.5)
    assert raised.value.field == "bounded_share"
