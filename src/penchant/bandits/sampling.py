"""Drawing an arm from choice probabilities, and the uniform tie-break over the best."""

from __future__ import annotations

import numpy as np

from penchant.bandits.validation import FloatArray


def draw(probs: FloatArray, rng: np.random.Generator) -> int:
    """An index drawn with the given probabilities (one uniform draw from rng).

    Arms with probability 0 are never drawn.
    """
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    if index >= len(probs) or probs[index] <= 0:  # rounding at the very top
        index = int(np.flatnonzero(probs > 0)[-1])
    return index


def uniform_over_best(scores: FloatArray) -> FloatArray:
    """Probability 1/g on each of the g highest (exactly tied) scores, 0 elsewhere."""
    best = scores == scores.max()
    return np.asarray(best / best.sum(), dtype=np.float64)
