"""Top-n items by inner product for a batch of query vectors: exact, or approximate with faiss.

Measured with faiss-cpu 1.15.1 on a 2-core machine (shared, so times are upper bounds),
one thread, 100,000 x 64 float32 items: build seconds, then recall@100 against exact
scoring over 200 queries / median ms per query searched one at a time. Item sets: 64
well-separated clusters; a rank-16 Gaussian; iALS factors of amazon-beauty resampled with
noise to 100,000 items (whose norms vary far more); the test suite's rank-16 mixture.

| index (method, parameters)       | build s | clusters   | rank-16    | iALS       | tests      |
| -------------------------------- | ------- | ---------- | ---------- | ---------- | ---------- |
| IVF-Flat nlist=632 nprobe=16     | 1.1-1.4 | 0.998/0.12 | 0.402/0.13 | 0.536/0.11 | 0.723/0.11 |
| IVF-Flat nlist=632 nprobe=64     | 1.1-1.3 | 1.000/0.27 | 0.778/0.36 | 0.694/0.24 | 0.971/0.25 |
| IVF-Flat nlist=1264 nprobe=32    | 3.8-4.6 | 0.997/0.12 | 0.446/0.20 | 0.550/0.12 | 0.742/0.13 |
| HNSW M=32 efC=40 efSearch=256    | 3.9-7.0 | 0.950/0.33 | 0.972/0.46 | 0.936/0.44 | 0.943/0.31 |
| HNSW M=48 efC=40 efSearch=256    | 4.4-9.1 | 0.988/0.31 | 0.989/0.94 | 0.953/0.45 | 0.970/0.51 |
| PQ64x4fs + refine k_factor=4, pq | 1.5-1.6 | 0.999/0.35 | 0.980/0.37 | 0.969/0.32 | 0.989/0.50 |
| PQ64x4fs + refine k_factor=8     | 1.3-2.0 | 1.000/0.44 | 0.994/0.67 | 0.982/0.42 | 0.998/0.44 |

Exact scoring takes 1-8 ms for one query. IVF is fast but finds the top by inner product
only when items form clusters (on the 12,101 real iALS items: 0.36 at nprobe=16). HNSW with
the inner-product metric is slow to build and unsteady (efConstruction 100 or 200 lowered
recall); reducing inner product to L2 with one extra coordinate lifted IVF only at
nprobe=64 (iALS 0.96, rank-16 0.86) and made HNSW worse (0.85 at best).

`pq` (a 4-bit code per dimension scanned with SIMD, then the best `k_factor * n` rescored
exactly) wins on these sets, but not on the factors of a real training run: on the serving
benchmark's 64-factor iALS (1,000,000 users, 100,000 items; below the top few dozen its
scores are near-ties) `pq` stalls at recall@100 0.917 (k_factor 4) to 0.934 (32), while
HNSW M=48 reaches 0.947 with efSearch 256 and 0.97 with 512 (0.4 and 0.65 ms a query).

A trained factor model offers a better way: its item norms are very uneven (popular items
have long vectors; on that iALS the median norm is 0.0095, the largest 17), and a score is
at most |user| x |item|. `bounded` keeps the items sorted by decreasing norm and scores them
block by block (2,048, then doubling), stopping as soon as the list's n-th score beats the
bound of every item left. It is exact, needs no faiss, and on that iALS scores about 5% of
the catalog for a top 200: 0.17 ms a query (0.35 ms with 57% of the items filtered out)
against 1.25 ms for scoring all items. On unit-length vectors (text embeddings) nothing can
be skipped, so `auto` estimates the share a scan would score from sample queries (a model's
users) and takes `bounded` when it is at most `bounded_share`, else `hnsw` with efSearch
512. HNSW builds in seconds: training builds the index once and saves it with the model, so
serving workers load it. Past about a million items, `ivf` (clustered factors) may be
needed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import scipy.sparse as sp

from penchant.errors import InvalidInput
from penchant.models.base import CodeArray, mask_entries, top_k

logger = logging.getLogger("penchant.models.ann")

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
Kind = Literal["exact", "bounded", "pq", "hnsw", "ivf"]
METHODS = ("auto", "exact", "bounded", "pq", "hnsw", "ivf")
FORMAT = 1
_BATCH_CELLS = 1 << 24  # exact scores per block: 64 MiB of float32
_MIN_APPROX = 256  # smaller catalogs are always searched exactly (and pq needs 16 items)
_FIRST_BLOCK = 2048  # items the bounded scan scores before it first checks the bound
_PROBE_N = 200  # list length `auto` sizes the bounded scan for (a model source's default)
_NO_FAISS = "faiss is not installed (pip install 'penchant[ann]'); searching exactly"


def _faiss() -> Any | None:
    """The faiss module, or None when the optional extra `penchant[ann]` is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


@contextmanager
def _omp_threads(threads: int) -> Iterator[Any]:
    """faiss, run with `threads` OpenMP threads (a per-thread setting) and then restored."""
    faiss = cast(Any, _faiss())
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield faiss
    finally:
        faiss.omp_set_num_threads(before)


class ItemIndex:
    """Item vectors searchable by inner product; made by `build` or `load`.

    Attributes:
        kind: the search used: `exact`, `pq`, `hnsw` or `ivf`.
        params: the index parameters, saved with it.
        threads: OpenMP threads faiss builds and searches with (BLAS, which the exact path
            uses, is left to the caller: the server pins it to one thread per worker).
        fallback_reason: why an approximate index searches exactly (faiss missing), or None.
    """

    def __init__(
        self, vectors: FloatArray, kind: Kind, index: object, params: dict[str, int], threads: int
    ) -> None:
        self._vectors = vectors
        self._index: Any = index  # a faiss index, or None for exact search
        self.kind, self.params, self.threads = kind, params, threads
        self.fallback_reason: str | None = None
        if kind == "bounded":  # items by decreasing norm, for the early stop of the scan
            norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
            self._order: CodeArray = np.argsort(-norms, kind="stable").astype(np.int64)
            self._sorted: FloatArray = np.ascontiguousarray(vectors[self._order])
            self._lows = -norms[self._order]  # minus the norms: increasing, for searchsorted

    @property
    def exact(self) -> bool:
        """Whether searches are exact (`exact` and `bounded`)."""
        return self._index is None

    @property
    def n_items(self) -> int:
        """Number of items; their codes are 0 .. n_items - 1."""
        return int(self._vectors.shape[0])

    @property
    def dim(self) -> int:
        """Dimension of the vectors."""
        return int(self._vectors.shape[1])

    @classmethod
    def build(
        cls,
        vectors: np.ndarray[Any, Any],
        *,
        min_items: int = 50_000,
        method: str = "auto",
        rng: int = 0,
        threads: int = 1,
        k_factor: int = 4,
        hnsw_m: int = 48,
        ef_construction: int = 40,
        ef_search: int = 512,
        nlist: int | None = None,
        nprobe: int | None = None,
        max_overfetch: int = 2048,
        queries: np.ndarray[Any, Any] | None = None,
        bounded_share: float = 0.25,
    ) -> ItemIndex:
        """Index item vectors (row i is item code i).

        Args:
            vectors: (n_items x d) item vectors, e.g. a factor model's `item_factors_`.
            min_items: with `auto`, catalogs smaller than this are searched exactly (as are
                catalogs under 256 items with any method).
            method: `auto` (from `min_items` items: `bounded` when it pays, else `hnsw`),
                `exact`, `bounded`, `pq`, `hnsw` or `ivf` (see the module docstring).
            rng: seed of the k-means training of `pq` and `ivf`.
            threads: OpenMP threads faiss uses.
            k_factor: `pq` rescores exactly the best `k_factor * n` candidates.
            hnsw_m: `hnsw` graph degree.
            ef_construction: `hnsw` candidate list length while building.
            ef_search: `hnsw` candidate list length while searching.
            nlist: `ivf` cells; default 2 sqrt(n_items).
            nprobe: `ivf` cells searched; default max(8, nlist / 40).
            max_overfetch: at most this many extra results make up for excluded items;
                a row still short is then scored exactly.
            queries: typical query vectors (e.g. a sample of user factors); with them,
                `auto` estimates how much of the catalog a `bounded` scan would score.
            bounded_share: `auto` chooses `bounded` when that estimate is at most this
                share of the catalog.

        Raises:
            InvalidInput: vectors not a finite 2-D array with rows, or a bad parameter.
        """
        vecs = _matrix(vectors, "vectors")
        n, d = vecs.shape
        if n == 0:
            raise InvalidInput("vectors: no items to index", field="vectors")
        if method not in METHODS:
            raise InvalidInput(f"method: one of {METHODS}, got {method!r}", field="method")
        least = {"threads": (threads, 1), "k_factor": (k_factor, 1), "hnsw_m": (hnsw_m, 2)}
        least |= {"ef_construction": (ef_construction, 1), "ef_search": (ef_search, 1)}
        least |= {"max_overfetch": (max_overfetch, 0), "min_items": (min_items, 0)}
        least |= {"nlist": (nlist or 1, 1), "nprobe": (nprobe or 1, 1)}
        for name, (value, low) in least.items():
            if value < low:
                raise InvalidInput(f"{name}: must be at least {low}, got {value}", field=name)
        nlist = nlist or max(1, min(round(2 * math.sqrt(n)), n // 39))
        params = {"k_factor": k_factor, "hnsw_m": hnsw_m, "ef_construction": ef_construction}
        params |= {"ef_search": ef_search, "max_overfetch": max_overfetch, "nlist": nlist}
        params["nprobe"] = min(nlist, nprobe or max(8, math.ceil(nlist / 40)))
        if not 0.0 <= bounded_share <= 1.0:
            raise InvalidInput(
                f"bounded_share: a share in [0, 1], got {bounded_share}", field="bounded_share"
            )
        if method == "exact" or n < max(_MIN_APPROX, min_items if method == "auto" else 0):
            return cls(vecs, "exact", None, params, threads)
        if method == "bounded" or (
            method == "auto"
            and queries is not None
            and scan_share(vecs, _matrix(queries, "queries", d)) <= bounded_share
        ):
            return cls(vecs, "bounded", None, params, threads)
        kind = cast(Kind, "hnsw" if method == "auto" else method)
        if _faiss() is None:
            logger.warning("ItemIndex %s over %d items: %s", kind, n, _NO_FAISS)
            return _fallback(vecs, params, threads)
        with _omp_threads(threads) as faiss:
            metric = faiss.METRIC_INNER_PRODUCT
            if kind == "pq":  # one 4-bit code per dimension, then exact rescoring
                index = faiss.index_factory(d, f"PQ{d}x4fs,RFlat", metric)
                faiss.downcast_index(index.base_index).pq.cp.seed = rng
                index.train(vecs)
            elif kind == "hnsw":
                index = faiss.IndexHNSWFlat(d, hnsw_m, metric)
                index.hnsw.efConstruction = ef_construction
            else:
                index = faiss.index_factory(d, f"IVF{nlist},Flat", metric)
                index.cp.niter, index.cp.seed = 10, rng  # as good as 25 iterations, faster
                sample = np.sort(np.random.default_rng(rng).permutation(n)[: 39 * nlist])
                index.train(vecs[sample])
            index.add(vecs)
        return cls(vecs, kind, _configure(index, kind, params), params, threads)

    def search(
        self,
        queries: np.ndarray[Any, Any],
        n: int,
        *,
        exclude: sp.csr_matrix | None = None,
        allowed: np.ndarray[Any, Any] | None = None,
    ) -> tuple[CodeArray, FloatArray]:
        """The n items with the largest inner product with each query, best first.

        Args:
            queries: (b x d) query vectors, e.g. user factors.
            n: list length.
            exclude: (b x n_items); a nonzero entry is an item that row must not get
                (already seen). Excluded items do not shorten the lists.
            allowed: (n_items,) booleans; only these items may be returned to any row (a
                request's filters). They do not shorten the lists either.

        Returns:
            (codes int64, scores float32), each (b x n); rows with fewer than n items to
            give are padded with code -1 and score -inf.

        Raises:
            InvalidInput: queries not finite or of the wrong dimension, n < 1, or exclude
                or allowed of the wrong shape.
        """
        q = _matrix(queries, "queries", self.dim)
        if n < 1:
            raise InvalidInput(f"n: must be at least 1, got {n}", field="n")
        excl = None if exclude is None else self._exclusions(exclude, len(q))
        allow = None if allowed is None else self._allowed(allowed)
        if self.kind == "bounded":
            return self._bounded(q, n, excl, allow)
        if self._index is None or len(q) == 0:
            return self._exact(q, n, excl, allow)
        counts = np.zeros(len(q), np.int64) if excl is None else np.diff(excl.indptr)
        # filters leave a share of the catalog: fetch enough that the rest fills the list
        share = 1.0 if allow is None else max(float(np.count_nonzero(allow)) / len(allow), 0.01)
        wanted = n + min(int(counts.max()), self.params["max_overfetch"])
        fetch = min(self.n_items, math.ceil(wanted / share * (1.0 if allow is None else 1.2)))
        with _omp_threads(self.threads) as faiss:
            extra = {}
            # many exclusions: a longer candidate list keeps the rest of the list exact (the
            # filters' over-fetch does not deepen it: the exact fallback covers them)
            depth = wanted + int(counts.max()) if len(counts) else wanted
            if self.kind == "hnsw" and depth > self.params["ef_search"]:
                search = faiss.SearchParametersHNSW()
                search.efSearch = depth
                extra["params"] = search
            found_scores, found = self._index.search(q, fetch, **extra)
        keep = found >= 0  # faiss pads a short result with -1
        if allow is not None:
            keep &= allow[np.maximum(found, 0)]
        if excl is not None and len(excl.indices):
            keep &= ~_listed(excl, found, self.n_items)
        if not keep[:, :n].all():  # move the kept results forward, keeping their order
            order = np.argsort(~keep, axis=1, kind="stable")
            found = np.take_along_axis(found, order, axis=1)
            found_scores = np.take_along_axis(found_scores, order, axis=1)
            keep = np.take_along_axis(keep, order, axis=1)
        width = min(n, fetch)
        keep = keep[:, :width]
        codes = np.full((len(q), n), -1, dtype=np.int64)
        scores = np.full((len(q), n), -np.inf, dtype=np.float32)
        codes[:, :width] = np.where(keep, found[:, :width], -1)
        scores[:, :width] = np.where(keep, found_scores[:, :width], -np.inf)
        available = self.n_items - counts
        if allow is not None:  # the allowed items, less the row's excluded ones among them
            available = np.full(len(q), np.count_nonzero(allow), np.int64)
            if excl is not None and len(excl.indices):
                rows = np.repeat(np.arange(len(q)), counts)
                available -= np.bincount(rows, allow[excl.indices], len(q)).astype(np.int64)
        short = np.flatnonzero(keep.sum(axis=1) < np.minimum(n, available))
        if len(short):  # more excluded than fetched, or the index came up short
            sub = None if excl is None else excl[short]
            codes[short], scores[short] = self._exact(q[short], n, sub, allow)
        return codes, scores

    def _allowed(self, allowed: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.bool_]]:
        out = np.asarray(allowed)
        if out.shape != (self.n_items,) or out.dtype != np.bool_:
            raise InvalidInput(
                f"allowed: expected {self.n_items} booleans, got {out.dtype} {out.shape}",
                field="allowed",
            )
        return out

    def _bounded(
        self,
        q: FloatArray,
        n: int,
        excl: sp.csr_matrix | None,
        allow: np.ndarray[Any, Any] | None,
    ) -> tuple[CodeArray, FloatArray]:
        """Exact top-n, scoring items by decreasing norm and stopping once no item left can
        enter the list: an item's score is at most |query| x |item| (Cauchy-Schwarz)."""
        codes = np.full((len(q), n), -1, dtype=np.int64)
        scores = np.full((len(q), n), -np.inf, dtype=np.float32)
        total = self.n_items
        for row in range(len(q)):
            vector = q[row]
            reach = max(float(np.linalg.norm(vector.astype(np.float64))) * (1.0 + 1e-5), 1e-30)
            banned = None if excl is None else excl.indices[excl.indptr[row] : excl.indptr[row + 1]]
            best_codes = np.zeros(0, dtype=np.int64)
            best = np.zeros(0, dtype=np.float32)
            start, size = 0, _FIRST_BLOCK
            while start < total:
                end = min(total, start + size)
                found = self._order[start:end]
                got = self._sorted[start:end] @ vector
                if len(best) == n:  # the list is full: only what beats its last can enter
                    above = np.flatnonzero(got > best.min())
                    found, got = found[above], got[above]
                if allow is not None or (banned is not None and len(banned)):
                    ok = np.ones(len(found), dtype=bool) if allow is None else allow[found]
                    if banned is not None and len(banned):
                        at = np.minimum(np.searchsorted(banned, found), len(banned) - 1)
                        ok &= banned[at] != found
                    found, got = found[ok], got[ok]
                if len(best):
                    found = np.concatenate([best_codes, found])
                    got = np.concatenate([best, got])
                if len(got) > n:
                    part = np.argpartition(-got, n - 1)[:n]
                    found, got = found[part], got[part]
                best_codes, best = found, got
                start, size = end, 2 * size
                if len(best) == n:  # only items whose bound reaches the list's last can enter
                    least = -float(best.min()) / reach  # minus the smallest norm that can enter
                    limit = int(np.searchsorted(self._lows, least, "right"))
                    if limit <= start:
                        break
                    size = min(size, limit - start)
            order = np.lexsort((best_codes, -best))
            codes[row, : len(order)] = best_codes[order]
            scores[row, : len(order)] = best[order]
        return codes, scores

    def _exclusions(self, exclude: sp.csr_matrix, rows: int) -> sp.csr_matrix:
        """Exclusions as canonical CSR (sorted, no duplicates, no stored zeros)."""
        if exclude.shape != (rows, self.n_items):
            raise InvalidInput(
                f"exclude: expected shape {(rows, self.n_items)}, got {exclude.shape}",
                field="exclude",
            )
        out = exclude if getattr(exclude, "format", None) == "csr" else sp.csr_matrix(exclude)
        if not out.has_canonical_format or (out.data == 0).any():
            out = sp.csr_matrix(out, copy=True)
            out.sum_duplicates()
            out.eliminate_zeros()
        return out

    def _exact(
        self,
        q: FloatArray,
        n: int,
        excl: sp.csr_matrix | None,
        allow: np.ndarray[Any, Any] | None = None,
    ) -> tuple[CodeArray, FloatArray]:
        codes = np.full((len(q), n), -1, dtype=np.int64)
        scores = np.full((len(q), n), -np.inf, dtype=np.float32)
        step = max(1, _BATCH_CELLS // self.n_items)
        for start in range(0, len(q), step):
            end = min(start + step, len(q))
            block = np.asarray(q[start:end] @ self._vectors.T, dtype=np.float32)
            if allow is not None:
                block[:, ~allow] = -np.inf
            if excl is not None:
                mask_entries(block, excl[start:end])
            codes[start:end], scores[start:end] = top_k(block, n)
        return codes, scores

    def save(self, path: Path) -> None:
        """Write the index to a folder: `index.npz` (vectors, faiss bytes) and `index.json`."""
        path.mkdir(parents=True, exist_ok=True)
        arrays = {"vectors": self._vectors}
        if self._index is not None:
            arrays["faiss"] = cast(Any, _faiss()).serialize_index(self._index)
        np.savez(path / "index.npz", allow_pickle=False, **arrays)
        meta = {"format": FORMAT, "kind": self.kind, "params": self.params}
        meta |= {"threads": self.threads, "n_items": self.n_items, "dim": self.dim}
        (path / "index.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path, *, threads: int | None = None) -> ItemIndex:
        """Read an index written by `save`; without faiss, an approximate one searches exactly.

        Args:
            path: the folder.
            threads: OpenMP threads for faiss; default the saved value.

        Raises:
            InvalidInput: the folder holds no index of a format this version reads.
        """
        meta = json.loads((path / "index.json").read_text())
        if meta.get("format") != FORMAT or meta.get("kind") not in METHODS[1:]:
            raise InvalidInput(f"{path.name}: not an item index this version reads", field="path")
        with np.load(path / "index.npz", allow_pickle=False) as npz:
            vectors = np.ascontiguousarray(npz["vectors"], dtype=np.float32)
            blob = npz["faiss"] if "faiss" in npz.files else None
        kind: Kind = meta["kind"]
        params = {str(k): int(v) for k, v in meta["params"].items()}
        threads = threads or int(meta["threads"])
        if blob is None:
            return cls(vectors, "bounded" if kind == "bounded" else "exact", None, params, threads)
        faiss = _faiss()
        if faiss is None:
            logger.warning("ItemIndex %s loaded from %s: %s", kind, path.name, _NO_FAISS)
            return _fallback(vectors, params, threads)
        index = _configure(faiss.deserialize_index(blob), kind, params)
        return cls(vectors, kind, index, params, threads)


def scan_share(vectors: FloatArray, queries: FloatArray, n: int = _PROBE_N) -> float:
    """How much of the catalog a `bounded` scan scores for these queries (mean share, without
    filters): the items whose norm bound |query| x |item| reaches the query's n-th best score.

    Skewed norms (factor models, where popular items have long vectors) give a small share;
    unit-length embeddings give 1.
    """
    if not len(queries):
        return 1.0
    norms = np.sort(np.linalg.norm(vectors.astype(np.float64), axis=1))
    n = min(n, len(vectors))
    shares = []
    for start in range(0, len(queries), 64):
        block = queries[start : start + 64].astype(np.float64)
        threshold = -np.partition(-(block @ vectors.T), n - 1, axis=1)[:, n - 1]
        reach = np.linalg.norm(block, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            needed = np.where(reach > 0, threshold / reach, 0.0)
        scanned = len(norms) - np.searchsorted(norms, needed, side="left")
        shares.append(np.maximum(scanned, n) / len(norms))
    return float(np.concatenate(shares).mean())


def _listed(excl: sp.csr_matrix, found: CodeArray, n_items: int) -> np.ndarray[Any, Any]:
    """Per entry of `found` (b x m codes): whether its row of `excl` lists it."""
    rows = np.arange(len(found), dtype=np.int64) * n_items
    banned = np.repeat(rows, np.diff(excl.indptr)) + excl.indices  # sorted: canonical CSR
    keys = rows[:, None] + found
    at = np.minimum(np.searchsorted(banned, keys), len(banned) - 1)
    listed: np.ndarray[Any, Any] = banned[at] == keys  # np.isin: slower on small lists
    return listed


def _fallback(vectors: FloatArray, params: dict[str, int], threads: int) -> ItemIndex:
    """An exact index standing in for an approximate one when faiss is missing."""
    index = ItemIndex(vectors, "exact", None, params, threads)
    index.fallback_reason = _NO_FAISS
    return index


def _configure(index: Any, kind: Kind, params: dict[str, int]) -> Any:
    """Set the search-time parameters of a faiss index."""
    if kind == "pq":
        index.k_factor = float(params["k_factor"])
    elif kind == "hnsw":
        index.hnsw.efSearch = params["ef_search"]
    else:
        index.nprobe = params["nprobe"]
    return index


def _matrix(x: np.ndarray[Any, Any], field: str, dim: int | None = None) -> FloatArray:
    """A C-contiguous float32 copy of a finite 2-D array, or InvalidInput naming the field."""
    try:
        out = np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: not an array of numbers", field=field) from exc
    if out.ndim != 2 or out.shape[1] < 1:
        raise InvalidInput(f"{field}: expected a 2-D array, got shape {out.shape}", field=field)
    if dim is not None and out.shape[1] != dim:
        raise InvalidInput(f"{field}: expected {dim} columns, got {out.shape[1]}", field=field)
    if not np.isfinite(out).all():
        raise InvalidInput(f"{field}: contains NaN or infinite values", field=field)
    return out
