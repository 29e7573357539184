"""Ranking metrics against trec_eval (pytrec_eval), catalog metrics against plain loops."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
import pytrec_eval
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.errors import InvalidInput
from penchant.evaluation import metrics
from penchant.evaluation.metrics import RANKING_METRICS, catalog_metrics, ranking_metrics

N_ITEMS = 120
DEPTH = 20
KS = (1, 3, 5, 10, 20)
IntArray = npt.NDArray[np.int64]


def random_case(seed: int = 7, n_users: int = 400) -> tuple[IntArray, sp.csr_matrix]:
    """Random lists (some padded, user 0 all padding) and 1..30 relevant items per user.

    The CSR matrix is built by hand with each row's columns unsorted and relevance values
    other than 1, which the metrics must treat as plain "relevant".
    """
    rng = np.random.default_rng(seed)
    recommended = np.full((n_users, DEPTH), -1, dtype=np.int64)
    indptr, indices = [0], []
    for user in range(n_users):
        relevant = rng.choice(N_ITEMS, size=int(rng.integers(1, 31)), replace=False)
        weights = np.ones(N_ITEMS)
        weights[relevant] = 4.0  # enough hits at every rank to exercise every metric
        length = DEPTH if rng.random() < 0.7 else int(rng.integers(0, DEPTH))
        if user == 0:
            length = 0
        recommended[user, :length] = rng.choice(
            N_ITEMS, size=length, replace=False, p=weights / weights.sum()
        )
        indices.extend(relevant.tolist())
        indptr.append(len(indices))
    values = rng.integers(1, 5, len(indices)).astype(np.float64)
    truth = sp.csr_matrix((values, indices, indptr), shape=(n_users, N_ITEMS))
    return recommended, truth


def relevant_sets(truth: sp.csr_matrix) -> list[set[int]]:
    return [
        set(truth.indices[a:b].tolist())
        for a, b in zip(truth.indptr[:-1], truth.indptr[1:], strict=True)
    ]


def test_ranking_metrics_match_trec_eval() -> None:
    recommended, truth = random_case()
    ours = ranking_metrics(recommended, truth, KS)
    sets = relevant_sets(truth)
    qrel = {f"u{u}": {f"i{i}": 1 for i in items} for u, items in enumerate(sets)}
    # trec_eval ranks by score descending and breaks ties by docid descending: strictly
    # decreasing scores make its ranking exactly ours.
    run = {
        f"u{u}": {f"i{item}": float(DEPTH - rank) for rank, item in enumerate(row) if item >= 0}
        for u, row in enumerate(recommended.tolist())
    }
    cutoffs = ",".join(map(str, KS))
    names = {"ndcg": "ndcg_cut", "precision": "P", "recall": "recall", "map": "map_cut"}
    names["hit_rate"] = "success"
    measures = {f"{trec}.{cutoffs}" for trec in names.values()} | {"recip_rank"}
    trec = pytrec_eval.RelevanceEvaluator(qrel, measures).evaluate(run)
    assert len(trec) == len(sets)  # an empty run (user 0) is scored 0, not dropped

    # pytrec_eval hands back trec_eval's doubles unrounded (only the CLI prints 4
    # decimals), so the only gap is summation order.
    for metric, trec_name in names.items():
        for k in KS:
            expected = [trec[f"u{u}"][f"{trec_name}_{k}"] for u in range(len(sets))]
            np.testing.assert_allclose(ours[f"{metric}@{k}"], expected, rtol=0, atol=1e-9)
    # recip_rank has no cut-off: it equals MRR at the full list length.
    expected_rr = [trec[f"u{u}"]["recip_rank"] for u in range(len(sets))]
    np.testing.assert_allclose(ours[f"mrr@{DEPTH}"], expected_rr, rtol=0, atol=1e-9)

    # The data must exercise the metrics: misses and hits, |R| above and below k.
    assert 0.1 < ours["hit_rate@1"].mean() < 0.9
    assert 0.0 < ours["ndcg@10"].mean() < 1.0


def test_recall_norm_matches_a_plain_loop() -> None:
    recommended, truth = random_case(seed=11, n_users=200)
    ours = ranking_metrics(recommended, truth, KS)
    for user, relevant in enumerate(relevant_sets(truth)):
        for k in KS:
            hits = sum(1 for item in recommended[user, :k] if item in relevant)
            assert ours[f"recall_norm@{k}"][user] == pytest.approx(hits / min(k, len(relevant)))


def test_known_answers_by_hand() -> None:
    # One user, relevant {1, 2}; the list [3, 1, pad] hits only at rank 2.
    truth = sp.csr_matrix(([1.0, 1.0], ([0, 0], [1, 2])), shape=(1, 5))
    out = ranking_metrics(np.array([[3, 1, -1]]), truth, [1, 3])
    discount = 1.0 / math.log2(3.0)
    expected = {
        "ndcg@3": discount / (1.0 + discount),
        "recall@3": 0.5,
        "recall_norm@3": 0.5,
        "precision@3": 1.0 / 3.0,
        "map@3": 0.5 / 2.0,
        "mrr@3": 0.5,
        "hit_rate@3": 1.0,
    }
    for name, value in expected.items():
        assert out[name][0] == pytest.approx(value)
    assert all(out[f"{metric}@1"][0] == 0.0 for metric in RANKING_METRICS)
    assert set(out) == {f"{m}@{k}" for m in RANKING_METRICS for k in (1, 3)}


def test_padding_never_hits_the_previous_users_last_item() -> None:
    # User 0 finds the last item relevant; user 1's padding must not borrow it.
    truth = sp.csr_matrix(([1.0, 1.0], ([0, 1], [3, 0])), shape=(2, 4))
    out = ranking_metrics(np.array([[3, -1], [-1, -1]]), truth, [2])
    assert out["hit_rate@2"].tolist() == [1.0, 0.0]


def test_stored_zeros_are_not_relevant() -> None:
    truth = sp.csr_matrix(([0.0, 1.0], ([0, 0], [0, 1])), shape=(1, 3))
    out = ranking_metrics(np.array([[0, 1]]), truth, [1, 2])
    assert out["recall@1"][0] == 0.0
    assert out["recall@2"][0] == 1.0


def test_scoring_in_blocks_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    recommended, truth = random_case(seed=3, n_users=50)
    whole = ranking_metrics(recommended, truth, KS)
    monkeypatch.setattr(metrics, "_BLOCK_CELLS", 3 * DEPTH)  # blocks of 3 users
    blocks = ranking_metrics(recommended, truth, KS)
    for name, values in whole.items():
        np.testing.assert_array_equal(blocks[name], values)


@pytest.mark.parametrize("ks", [[0], [DEPTH + 1], [], [2.0], [True]])
def test_cutoffs_outside_one_to_k_are_rejected(ks: list[int]) -> None:
    recommended, truth = random_case(n_users=3)
    with pytest.raises(InvalidInput, match="cut-off"):
        ranking_metrics(recommended, truth, ks)


def test_a_user_without_relevant_items_is_rejected() -> None:
    truth = sp.csr_matrix(([1.0], ([0], [0])), shape=(2, 3))
    with pytest.raises(InvalidInput, match="no relevant item"):
        ranking_metrics(np.array([[0], [1]]), truth, [1])


@pytest.mark.parametrize(
    ("recommended", "message"),
    [
        (np.array([[0, 3]]), "item codes"),
        (np.array([[0, -2]]), "item codes"),
        (np.array([[1, 1]]), "twice"),
        (np.array([[0.0, 1.0]]), "integer"),
        (np.array([0, 1]), "2-D"),
        (np.array([[0, 1], [1, 0]]), "rows"),
    ],
)
def test_bad_recommendations_are_rejected(recommended: IntArray, message: str) -> None:
    truth = sp.csr_matrix(np.ones((1, 3)))
    with pytest.raises(InvalidInput, match=message):
        ranking_metrics(recommended, truth, [1])


def test_dense_relevance_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="sparse"):
        ranking_metrics(np.array([[0]]), np.ones((1, 3)), [1])


@st.composite
def ranking_cases(draw: st.DrawFn) -> tuple[IntArray, sp.csr_matrix, IntArray]:
    """Random lists, relevance, and the perfect list for that relevance."""
    n_items = draw(st.integers(1, 12))
    depth = draw(st.integers(1, 8))
    n_users = draw(st.integers(1, 5))
    rows, perfect, dense = [], [], np.zeros((n_users, n_items))
    for user in range(n_users):
        relevant = draw(st.sets(st.integers(0, n_items - 1), min_size=1))
        dense[user, sorted(relevant)] = 1.0
        order = draw(st.permutations(range(n_items)))
        length = draw(st.integers(0, min(depth, n_items)))
        rows.append(list(order[:length]) + [-1] * (depth - length))
        best = [i for i in order if i in relevant] + [i for i in order if i not in relevant]
        perfect.append((best + [-1] * depth)[:depth])
    return np.array(rows), sp.csr_matrix(dense), np.array(perfect)


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_metrics_lie_in_unit_interval_and_grow_with_k(
    case: tuple[IntArray, sp.csr_matrix, IntArray],
) -> None:
    recommended, truth, _ = case
    ks = list(range(1, recommended.shape[1] + 1))
    out = ranking_metrics(recommended, truth, ks)
    for values in out.values():
        assert np.all((values >= 0.0) & (values <= 1.0 + 1e-12))
    for metric in ("recall", "hit_rate", "mrr", "map"):
        by_k = np.stack([out[f"{metric}@{k}"] for k in ks])
        assert np.all(np.diff(by_k, axis=0) >= -1e-12)


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_a_perfect_ranking_scores_one(case: tuple[IntArray, sp.csr_matrix, IntArray]) -> None:
    _, truth, perfect = case
    ks = list(range(1, perfect.shape[1] + 1))
    out = ranking_metrics(perfect, truth, ks)
    for k in ks:
        np.testing.assert_allclose(out[f"ndcg@{k}"], 1.0, rtol=1e-12)
        np.testing.assert_array_equal(out[f"recall_norm@{k}"], 1.0)
        np.testing.assert_array_equal(out[f"hit_rate@{k}"], 1.0)


def brute_catalog(
    recommended: IntArray, k: int, n_items: int, counts: list[int], n_train: int
) -> dict[str, float]:
    """The catalog metrics written out plainly, Gini by the sorted-values formula."""
    lists = [[item for item in row[:k] if item >= 0] for row in recommended.tolist()]
    shown = [item for items in lists for item in items]
    exposure = [0] * n_items
    for item in shown:
        exposure[item] += 1
    x = sorted(exposure)
    gini = sum((2 * i - n_items - 1) * v for i, v in enumerate(x, start=1)) / (n_items * sum(x))
    novelty = sum(-math.log2(max(counts[i], 1) / n_train) for i in shown) / len(shown)
    arp = [sum(counts[i] for i in items) / len(items) for items in lists if items]
    return {
        f"coverage@{k}": len(set(shown)) / n_items,
        f"novelty@{k}": novelty,
        f"gini@{k}": gini,
        f"arp@{k}": sum(arp) / len(arp),
    }


def test_catalog_metrics_follow_recboles_definitions() -> None:
    """Coverage, ARP and Gini as RecBole defines them (RUCAIBox/RecBole,
    recbole/evaluator/metrics.py: `ItemCoverage`, `AveragePopularity`, `GiniIndex`), restated
    on full lists (RecBole's have no padding): coverage is the distinct recommended items over
    the catalog; ARP the per-user running mean of the training counts at depth k, averaged
    over users; Gini sums (2 i - n - 1) x count over the recommended items only, sorted up
    and given the top ranks n - m + 1..n of the n items (the unrecommended ones being zeros
    below them), over n x the number of recommendations."""
    rng = np.random.default_rng(11)
    n_users, depth = 200, 20
    recommended = np.stack([rng.choice(N_ITEMS, depth, replace=False) for _ in range(n_users)])
    counts = rng.integers(0, 300, N_ITEMS)
    out = catalog_metrics(recommended, KS, n_items=N_ITEMS, item_counts=counts, n_users_train=300)
    running_pop = np.cumsum(counts[recommended], axis=1) / np.arange(1, depth + 1)
    for k in KS:
        top = recommended[:, :k]
        assert out[f"coverage@{k}"] == pytest.approx(len(np.unique(top)) / N_ITEMS)
        assert out[f"arp@{k}"] == pytest.approx(running_pop.mean(axis=0)[k - 1])
        _, times = np.unique(top, return_counts=True)
        times = np.sort(times)
        ranks = np.arange(N_ITEMS - len(times) + 1, N_ITEMS + 1)
        gini = np.sum((2 * ranks - N_ITEMS - 1) * times) / top.size / N_ITEMS
        assert out[f"gini@{k}"] == pytest.approx(gini)


def test_catalog_metrics_match_plain_loops() -> None:
    recommended, _ = random_case(seed=5, n_users=300)
    rng = np.random.default_rng(5)
    n_train = 500
    counts = rng.integers(0, n_train + 1, N_ITEMS)
    counts[:10] = 0  # unseen in training: count 1 for novelty, 0 for ARP
    out = catalog_metrics(recommended, KS, n_items=N_ITEMS, item_counts=counts, n_users_train=500)
    for k in KS:
        expected = brute_catalog(recommended, k, N_ITEMS, counts.tolist(), n_train)
        for name, value in expected.items():
            assert out[name] == pytest.approx(value, rel=1e-12), name


def test_equal_exposure_has_zero_gini_and_full_coverage() -> None:
    n = 6
    recommended = np.array([[(u + j) % n for j in range(3)] for u in range(n)])
    out = catalog_metrics(recommended, [1, 3], n_items=n, item_counts=[1] * n, n_users_train=n)
    for k in (1, 3):
        assert out[f"gini@{k}"] == pytest.approx(0.0, abs=1e-12)
        assert out[f"coverage@{k}"] == 1.0


def test_one_item_for_everyone_is_maximal_concentration() -> None:
    n_items, n_train = 8, 16
    counts = [0] * n_items
    counts[2] = 4
    recommended = np.array([[2, -1]] * 5)
    out = catalog_metrics(
        recommended, [1, 2], n_items=n_items, item_counts=counts, n_users_train=n_train
    )
    for k in (1, 2):
        assert out[f"coverage@{k}"] == 1 / n_items
        assert out[f"gini@{k}"] == pytest.approx((n_items - 1) / n_items)
        assert out[f"novelty@{k}"] == pytest.approx(2.0)  # -log2(4 / 16)
        assert out[f"arp@{k}"] == pytest.approx(4.0)
    unseen = catalog_metrics([[0]], [1], n_items=n_items, item_counts=counts, n_users_train=n_train)
    assert unseen["novelty@1"] == pytest.approx(4.0)  # count 0 counts as 1: -log2(1 / 16)
    assert unseen["arp@1"] == 0.0


def test_all_padding_gives_nan_not_a_crash() -> None:
    out = catalog_metrics([[-1, -1]], [2], n_items=3, item_counts=[1, 1, 1], n_users_train=2)
    assert out["coverage@2"] == 0.0
    assert all(math.isnan(out[f"{m}@2"]) for m in ("novelty", "gini", "arp"))


@pytest.mark.parametrize(
    ("counts", "ks", "message"),
    [
        ([1, 1], [1], "length 3"),
        ([1, -1, 1], [1], "between 0 and n_users_train"),
        ([1, 5, 1], [1], "between 0 and n_users_train"),
        ([1, 1, 1], [3], "cut-off"),
    ],
)
def test_bad_catalog_input_is_rejected(counts: list[int], ks: list[int], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        catalog_metrics([[0, 1]], ks, n_items=3, item_counts=counts, n_users_train=4)
