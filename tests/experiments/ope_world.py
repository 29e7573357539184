"""A small synthetic bandit world whose policy values are known exactly.

Contexts come from a finite set with known probabilities, so the value of any policy is a
finite sum, computed here without any estimator: the test oracle for coverage and bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import expit, softmax

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class World:
    """Contexts, the true reward table, a logging and an evaluation policy.

    Attributes:
        contexts: shape (m, d) the possible contexts, drawn uniformly.
        q: shape (m, n_actions, len_list) true expected reward (click probability).
        logging: shape (m, n_actions, len_list) the logging policy's probabilities.
        target: shape (m, n_actions, len_list) the evaluated policy's probabilities.
    """

    contexts: FloatArray
    q: FloatArray
    logging: FloatArray
    target: FloatArray

    @property
    def truth(self) -> float:
        """The evaluated policy's value: contexts and positions uniform, exact."""
        return float((self.target * self.q).sum(axis=1).mean())


@dataclass(frozen=True)
class Log:
    """One logged sample from a `World`, in obp's layout."""

    context_index: IntArray
    context: FloatArray
    action: IntArray
    position: IntArray
    reward: FloatArray
    pscore: FloatArray
    action_dist: FloatArray
    true_rewards: FloatArray


def make_world(
    seed: int = 0, n_contexts: int = 12, dim: int = 3, n_actions: int = 4, len_list: int = 2
) -> World:
    """A world with context-dependent rewards and two different softmax policies."""
    rng = np.random.default_rng(seed)
    contexts = rng.normal(size=(n_contexts, dim))
    slopes = rng.normal(scale=0.8, size=(dim, n_actions))
    action_effect = rng.normal(scale=0.5, size=n_actions)
    position_effect = np.array([0.0, -0.7, -1.2, -1.5][:len_list])
    eta = (contexts @ slopes + action_effect)[:, :, None] + position_effect[None, None, :]
    q = expit(eta - 1.0)
    logging_scores = contexts @ rng.normal(scale=0.7, size=(dim, n_actions))
    logging = np.repeat(softmax(logging_scores, axis=1)[:, :, None], len_list, axis=2)
    target_scores = 2.0 * (contexts @ slopes)[:, :, None] + 0.3 * position_effect[None, None, :]
    target = softmax(np.broadcast_to(target_scores, eta.shape), axis=1)
    return World(contexts=contexts, q=q, logging=logging, target=target)


def draw_log(world: World, n: int, rng: np.random.Generator) -> Log:
    """n rounds logged by the world's logging policy, each with a uniform position."""
    m, n_actions, len_list = world.q.shape
    ctx = rng.integers(0, m, size=n)
    position = rng.integers(0, len_list, size=n)
    probabilities = world.logging[ctx, :, position]
    cumulative = probabilities.cumsum(axis=1)
    action = (rng.random(n)[:, None] > cumulative).sum(axis=1)
    action = np.minimum(action, n_actions - 1)
    rows = np.arange(n)
    reward = (rng.random(n) < world.q[ctx, action, position]).astype(float)
    return Log(
        context_index=ctx,
        context=world.contexts[ctx],
        action=action.astype(np.int64),
        position=position.astype(np.int64),
        reward=reward,
        pscore=probabilities[rows, action],
        action_dist=world.target[ctx],
        true_rewards=world.q[ctx],
    )
