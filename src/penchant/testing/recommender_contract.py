"""`RecommenderContract`: the behaviour every `Recommender` must show.

Subclass it in a test module, implement `make_model` (small, fast hyperparameters) and
list `changed_params` (each dict must change the model's output); every test below then
runs against that model. Set `learns_preferences = False` for a model that ignores the
user (popularity).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from penchant.data import Dataset
from penchant.errors import InvalidInput, NotFound
from penchant.models import NotFitted, Recommender, load_model
from penchant.testing.synthetic import planted_blocks


class RecommenderContract(ABC):
    """The shared test suite; see the module docstring."""

    learns_preferences: ClassVar[bool] = True
    changed_params: ClassVar[list[dict[str, Any]]] = []

    @abstractmethod
    def make_model(self) -> Recommender:
        """A new, unfitted model with hyperparameters that fit the toy data quickly."""

    @pytest.fixture
    def data(self) -> Dataset:
        return planted_blocks()

    @pytest.fixture
    def fitted(self, data: Dataset) -> Recommender:
        return self.make_model().fit(data)

    # -- learning ---------------------------------------------------------------------------
    def test_planted_preference_ranks_first(self, fitted: Recommender, data: Dataset) -> None:
        if not self.learns_preferences:
            pytest.skip("this model does not personalize")
        users = np.arange(data.n_users)
        codes, _ = fitted.rank(users, k=3)
        groups = codes % 2
        assert (codes >= 0).all()
        assert (groups == (users % 2)[:, None]).mean() >= 0.95

    def test_seen_items_are_never_recommended(self, fitted: Recommender, data: Dataset) -> None:
        codes, _ = fitted.rank(np.arange(data.n_users), k=data.n_items)
        seen = data.matrix
        for user in range(data.n_users):
            row = codes[user]
            assert not set(row[row >= 0]) & set(seen[user].indices)
            # everything unseen is ranked, and nothing twice
            assert len(set(row[row >= 0])) == data.n_items - seen[user].nnz

    def test_scores_are_sorted_and_padding_is_marked(
        self, fitted: Recommender, data: Dataset
    ) -> None:
        codes, scores = fitted.rank(np.arange(5), k=data.n_items + 5)
        assert codes.shape == scores.shape == (5, data.n_items + 5)
        for row, vals in zip(codes, scores, strict=True):
            real = row >= 0
            assert np.all(np.diff(vals[real]) <= 1e-6)
            assert np.all(np.isneginf(vals[~real]))
            assert real.sum() < data.n_items  # seen items were left out

    def test_ids_in_and_out(self, fitted: Recommender, data: Dataset) -> None:
        ids, scores = fitted.recommend(["u0", "u1"], k=4)
        assert ids.shape == scores.shape == (2, 4)
        assert set(ids.ravel()) <= set(data.item_ids.tolist())
        codes, _ = fitted.rank(data.user_codes(["u0", "u1"]), k=4)
        assert ids.tolist() == data.item_ids[codes].tolist()

    def test_candidates_and_exclusions(self, fitted: Recommender, data: Dataset) -> None:
        allowed = ["i1", "i3", "i5", "i7", "i0"]
        ids, _ = fitted.recommend(["u0"], k=10, candidates=allowed, exclude=[["i3"]])
        picked = [i for i in ids[0] if i]
        assert set(picked) <= set(allowed) - {"i3"}
        assert not set(picked) & set(data.item_ids[data.matrix[0].indices].tolist())

    def test_cold_user_gets_a_full_list(self, fitted: Recommender) -> None:
        ids, scores = fitted.recommend(["never-seen"], k=5)
        assert all(ids[0]) and np.isfinite(scores).all()

    def test_given_history_steers_an_unknown_user(self, fitted: Recommender, data: Dataset) -> None:
        if not self.learns_preferences:
            pytest.skip("this model does not personalize")
        odd = [f"i{i}" for i in range(1, 12, 2)]
        even = [f"i{i}" for i in range(0, 12, 2)]
        ids, _ = fitted.recommend(["new-a", "new-b"], k=3, history=[odd, even])
        assert all(int(i[1:]) % 2 == 1 for i in ids[0])
        assert all(int(i[1:]) % 2 == 0 for i in ids[1])
        assert not set(ids[0]) & set(odd)

    def test_given_history_replaces_a_known_users_state(self, fitted: Recommender) -> None:
        if not self.learns_preferences:
            pytest.skip("this model does not personalize")
        odd = [f"i{i}" for i in range(1, 12, 2)]
        ids, _ = fitted.recommend(["u0"], k=3, history=[odd])  # u0 is an even-group user
        assert all(int(i[1:]) % 2 == 1 for i in ids[0])

    def test_similar_items(self, fitted: Recommender, data: Dataset) -> None:
        ids, _ = fitted.similar_items(["i0", "i1"], k=3)
        assert ids.shape == (2, 3)
        assert "i0" not in ids[0] and "i1" not in ids[1]
        if self.learns_preferences:
            assert all(int(i[1:]) % 2 == 0 for i in ids[0])
        with pytest.raises(NotFound):
            fitted.similar_items(["no-such-item"])

    # -- contract mechanics ------------------------------------------------------------------
    def test_unfitted_model_says_so(self) -> None:
        with pytest.raises(NotFitted):
            self.make_model().recommend(["u0"])

    def test_fitting_nothing_is_refused(self, data: Dataset) -> None:
        with pytest.raises(InvalidInput):
            self.make_model().fit(data.subset(np.zeros(len(data), dtype=bool)))

    def test_same_data_and_params_give_the_same_lists(self, data: Dataset) -> None:
        a, _ = self.make_model().fit(data).rank(np.arange(data.n_users), k=5)
        b, _ = self.make_model().fit(data).rank(np.arange(data.n_users), k=5)
        assert (a == b).all()

    def test_params_round_trip(self) -> None:
        model = self.make_model()
        clone = model.clone()
        assert clone is not model
        assert repr(clone) == repr(model)
        assert type(model).__name__ in repr(model)

    def test_every_hyperparameter_changes_the_output(self, data: Dataset) -> None:
        base = self.make_model().fit(data)
        users = np.arange(data.n_users)
        base_scores = base.scores(users, data.matrix)
        for change in self.changed_params:
            other = self.make_model().clone(**change).fit(data)
            assert not np.allclose(other.scores(users, data.matrix), base_scores), change

    def test_save_and_load_give_the_same_answers(
        self, fitted: Recommender, data: Dataset, tmp_path: Path
    ) -> None:
        fitted.save(tmp_path / "m")
        meta = json.loads((tmp_path / "m" / "model.json").read_text())
        assert meta["model"] == fitted.name
        for array in (tmp_path / "m" / "arrays").glob("*.npy"):
            np.load(array, allow_pickle=False)  # loads without pickle
        loaded = load_model(tmp_path / "m")
        assert loaded.get_params().keys() == fitted.get_params().keys()
        users = np.arange(data.n_users)
        a, sa = fitted.rank(users, k=5)
        b, sb = loaded.rank(users, k=5)
        assert (a == b).all()
        np.testing.assert_allclose(sa, sb, rtol=1e-6)
        ids_a, _ = fitted.similar_items(["i2"], k=3)
        ids_b, _ = loaded.similar_items(["i2"], k=3)
        assert ids_a.tolist() == ids_b.tolist()

    def test_forget_user_erases_their_rows(
        self, fitted: Recommender, data: Dataset, tmp_path: Path
    ) -> None:
        assert fitted.forget_user("u3") is True
        assert fitted.forget_user("nobody") is False
        code = int(data.user_codes(["u3"])[0])
        assert fitted.history_[code].nnz == 0
        cold, _ = fitted.recommend(["never-seen"], k=5)
        forgotten, _ = fitted.recommend(["u3"], k=5)
        if self.learns_preferences:
            assert forgotten.tolist() == cold.tolist()
        fitted.save(tmp_path / "m")
        assert load_model(tmp_path / "m").history_[code].nnz == 0
