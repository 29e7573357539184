"""EASE: a closed-form item-item linear model (Steck 2019)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from penchant.data import Dataset
from penchant.errors import InvalidInput
from penchant.models.base import Arrays, CodeArray, Recommender, ScoreArray, binarized


class CatalogTooLarge(InvalidInput):
    """A model's dense item x item matrix would not fit in memory."""


def physical_memory() -> int:
    """Bytes of memory on this machine (a cgroup limit, where one is set, if lower)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit:
            text = limit.read().strip()
        if text.isdigit():
            total = min(total, int(text))
    except OSError:
        pass
    return int(total)


def spd_inverse(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The inverse of a symmetric positive definite matrix, by Cholesky.

    About a third of the time of a general inverse here, and it fails loudly if the matrix
    is not positive definite. A Fortran-ordered input is overwritten instead of copied.
    """
    factor, info = lapack.dpotrf(matrix, lower=False, clean=False, overwrite_a=True)
    if info != 0:
        raise InvalidInput("the regularized Gram matrix is not positive definite")
    inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise InvalidInput("the regularized Gram matrix could not be inverted")
    n = inverse.shape[0]
    step = 1024
    for start in range(0, n, step):  # dpotri fills the upper triangle only
        end = min(start + step, n)
        inverse[start:end, :start] = inverse[:start, start:end].T
        block = inverse[start:end, start:end]
        inverse[start:end, start:end] = np.triu(block) + np.triu(block, 1).T
    return np.asarray(inverse)


class EASE(Recommender):
    """Embarrassingly shallow autoencoder: B = argmin |X - XB|^2 + l|B|^2 with diag(B) = 0.

    The solution is closed form: P = (X'X + l I)^-1, B = -P / diag(P), diag(B) = 0, and a
    user's scores are their history times B. It needs dense items x items matrices, so the
    catalog size is bounded by memory: fitting checks first and raises `CatalogTooLarge`
    with the numbers instead of running the machine out of memory.

    Args:
        regularization: l, the L2 penalty (larger for larger or denser data).
        weighted: fit on the interaction weights (else on 0/1). A user's history is scored
            with its weights either way, so event-type or recency weights steer the list.
        memory_fraction: share of the machine's memory fitting may plan to use.
    """

    name = "ease"

    def __init__(
        self, regularization: float = 500.0, weighted: bool = False, memory_fraction: float = 0.6
    ) -> None:
        self.regularization = regularization
        self.weighted = weighted
        self.memory_fraction = memory_fraction

    def _fit(self, data: Dataset) -> None:
        if self.regularization <= 0:
            raise InvalidInput(f"regularization: must be above 0, got {self.regularization}")
        n = data.n_items
        # the float64 Gram matrix, inverted and scaled in place, then its float32 copy
        needed = n * n * (8 + 4)
        budget = physical_memory() * self.memory_fraction
        if needed > budget:
            raise CatalogTooLarge(
                f"EASE on {n:,} items needs about {needed / 2**30:.1f} GiB for its dense "
                f"item x item matrices; {budget / 2**30:.1f} GiB is allowed here. Use itemknn "
                "or ials for a catalog this large, or raise min_item_interactions."
            )
        x = (data.matrix if self.weighted else binarized(data.matrix)).astype(np.float64)
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
        gram[np.diag_indices(n)] += self.regularization
        # the Gram matrix is symmetric: its transpose is the same matrix in Fortran order,
        # which LAPACK can overwrite without a copy
        p = spd_inverse(gram.T)
        del gram
        p /= -np.diag(p)  # B = -P / diag(P), column by column
        p[np.diag_indices(n)] = 0.0
        self.weights_ = p.astype(np.float32)

    def _score(self, users: CodeArray, history: sp.csr_matrix) -> ScoreArray:
        return np.asarray(history.astype(np.float32) @ self.weights_, dtype=np.float32)

    def _similar(self, items: CodeArray, one_hot: sp.csr_matrix) -> ScoreArray:
        return np.asarray(self.weights_[items], dtype=np.float32)

    def _arrays(self) -> Arrays:
        return {"weights": self.weights_}

    def _restore(self, arrays: Mapping[str, np.ndarray[Any, Any]], meta: Mapping[str, Any]) -> None:
        self.weights_ = np.array(arrays["weights"], dtype=np.float32)
