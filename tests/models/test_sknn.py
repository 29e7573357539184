"""Session-kNN: a hand-computed answer, the shared contract, and real e-commerce sessions."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from penchant.data import Dataset, split
from penchant.errors import InvalidInput
from penchant.evaluation.run import evaluate_model
from penchant.models import Popular, Recommender, SessionKNN
from penchant.testing import RecommenderContract
from shared_data import need_dataset


class TestSessionKNN(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [{"k": 1}, {"sample": 2}]

    def make_model(self) -> Recommender:
        return SessionKNN(k=10, sample=0)


def past_sessions() -> Dataset:
    """s0 = {a, b}, s1 = {a, c}, s2 = {b, c, d}, s3 = {d, e}; s3 is the newest."""
    sessions = [[0, 1], [0, 2], [1, 2, 3], [3, 4]]
    users = np.repeat(np.arange(4), [len(s) for s in sessions])
    items = np.concatenate(sessions)
    day = 86_400 * 1_000_000
    return Dataset.from_arrays(
        ["s0", "s1", "s2", "s3"],
        ["a", "b", "c", "d", "e"],
        users=users,
        items=items,
        first_ts=users.astype(np.int64) * day,
    )


def test_scores_are_the_summed_similarities_of_the_nearest_sessions() -> None:
    """Session {a, b} (weights 1 and 1): s0 shares 2 of sizes 2x2 (1.0), s1 shares a
    (1/sqrt(4) = 0.5), s2 shares b (1/sqrt(6)). With k=2: s0 and s1."""
    model = SessionKNN(k=2, sample=0).fit(past_sessions())
    current = sp.csr_matrix(np.array([[1, 1, 0, 0, 0]], dtype=np.float32))
    scores = model.scores(np.array([-1]), current)[0]
    np.testing.assert_allclose(scores, [1.5, 1.0, 0.5, 0.0, 0.0], rtol=1e-6)
    # every neighbour: s2 adds 1/sqrt(6) to b, c and d
    scores = SessionKNN(k=10, sample=0).fit(past_sessions()).scores(np.array([-1]), current)[0]
    third = 1 / np.sqrt(6)
    np.testing.assert_allclose(scores, [1.5, 1.0 + third, 0.5 + third, third, 0.0], rtol=1e-6)


def test_the_newest_item_of_an_ordered_session_counts_most() -> None:
    """[c, a] and [a, c] hold the same items; the newest item weighs 1, the one before 1/2."""
    model = SessionKNN(k=10, sample=0).fit(past_sessions())
    a_last, c_last = model.score_sequences([np.array([2, 0]), np.array([0, 2])])
    assert a_last[1] > c_last[1]  # b came with a
    assert c_last[3] > a_last[3]  # d came with c
    assert model.score_sequences([np.array([], dtype=np.int64)])[0].tolist() == (
        model.popularity_.tolist()
    )


def test_sample_keeps_the_most_recent_sessions() -> None:
    """With sample=1 only the newest session sharing an item is compared: for {b}, s2."""
    model = SessionKNN(k=10, sample=1).fit(past_sessions())
    current = sp.csr_matrix(np.array([[0, 1, 0, 0, 0]], dtype=np.float32))
    scores = model.scores(np.array([-1]), current)[0]
    nz = np.flatnonzero(scores)
    assert nz.tolist() == [1, 2, 3]  # the items of s2 only


def test_bad_parameters_name_themselves() -> None:
    with pytest.raises(InvalidInput, match="k: must be"):
        SessionKNN(k=0).fit(past_sessions())
    with pytest.raises(InvalidInput, match="sample: must be"):
        SessionKNN(sample=-1).fit(past_sessions())


def diginetica_sessions() -> Dataset:
    """The DIGINETICA sample: each session a user, its views ordered by `timeframe`."""
    pd = pytest.importorskip("pandas")
    path = need_dataset("diginetica-sample") / "sample_train-item-views.csv"
    views = pd.read_csv(path, sep=";")
    views = views.groupby(["session_id", "item_id"], as_index=False)["timeframe"].min()
    sessions, s = np.unique(views["session_id"].to_numpy(), return_inverse=True)
    items, i = np.unique(views["item_id"].to_numpy(), return_inverse=True)
    return Dataset.from_arrays(
        sessions.astype(str), items.astype(str), users=s, items=i,
        first_ts=views["timeframe"].to_numpy(np.int64) * 1000,
    )  # fmt: skip


def test_on_real_sessions_it_predicts_the_last_view_far_better_than_popularity() -> None:
    data = diginetica_sessions()
    the_split = split(data, "leave-last-out")
    knn = evaluate_model(SessionKNN(), the_split, [20])
    popular = evaluate_model(Popular(), the_split, [20])
    assert knn.mean("hit_rate@20") > 3 * popular.mean("hit_rate@20")
    assert knn.mean("hit_rate@20") > 0.08  # 0.099 measured; popularity 0.012
