"""A cascade click model with known answers, to test rankers and their comparisons.

Each simulated user has a click probability for each of M items (Beta(0.5, 4): most items
are rarely clicked, a few often). A ranker sees those probabilities through Gaussian noise:
less noise, a better ranker. Shown a list, a user reads from the top and clicks the first
item they are attracted to, or, with probability `patience`, reads on (Craswell et al. 2008).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def cascade_users(n: int, m: int, rng: np.random.Generator) -> FloatArray:
    """Click probabilities of n users for m items, shape (n, m)."""
    return rng.beta(0.5, 4.0, size=(n, m))


def noisy_ranking(attraction: FloatArray, noise: float, rng: np.random.Generator) -> IntArray:
    """Each user's ranking of the items (indices, best first) by a ranker that sees their
    click probabilities through Gaussian noise of this standard deviation."""
    return np.argsort(-(attraction + rng.normal(0.0, noise, attraction.shape)), axis=1)


def first_click(shown: FloatArray, patience: float, rng: np.random.Generator) -> IntArray:
    """The clicked position per row of shown click probabilities (top first); -1 for none."""
    click = rng.random(shown.shape) < shown
    read_on = ~click & (rng.random(shown.shape) < patience)
    reached = np.ones(shown.shape, dtype=bool)
    reached[:, 1:] = np.cumprod(read_on[:, :-1], axis=1).astype(bool)
    hit = reached & click
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
