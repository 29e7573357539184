"""The `Policy` contract: additive per-arm statistics, choice probabilities and propensities."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, NamedTuple, Self

import numpy as np
import numpy.typing as npt

from penchant.bandits.sampling import draw
from penchant.bandits.validation import (
    FloatArray,
    as_arms,
    as_context,
    as_contexts,
    as_reward,
    as_rewards,
    as_rng,
    as_stats,
)
from penchant.errors import InvalidInput
from penchant.types import Hyperparameters

#: `fit` sums at most this many delta cells at a time (32 MiB of float64).
_CHUNK_CELLS = 1 << 22


class Selection(NamedTuple):
    """An arm chosen by `Policy.select`, with the probability it had of being chosen."""

    arm: str
    propensity: float


class Policy(Hyperparameters, ABC):
    """A bandit policy over arms whose statistics are additive float64 vectors.

    Every arm's statistics are a vector of width `width(n_features)`, all zeros for an arm
    never seen, that only ever grows by addition: `pull_delta(x)` when the arm is chosen,
    `reward_delta(x, reward)` when a reward arrives for that choice (a reward of 0 adds
    nothing). So several workers can share them by atomically adding deltas, and they can be
    rebuilt from the event log as a plain sum. Priors and regularization are applied when the
    statistics are used, never stored.

    `probabilities(stats, x, rng)` gives the chance of choosing each arm (rows of `stats`);
    `choose(stats, x, rng)` draws from exactly that distribution, drawn with the same rng
    state, so the propensity it returns is the probability with which the choice was made
    (for Monte Carlo policies, the estimated distribution the arm was drawn from).

    Subclasses follow the scikit-learn contract: keyword hyperparameters stored unchanged
    in `__init__` and checked by `check()` on use. The stateful convenience (`fit`,
    `partial_fit`, `select`, learned `stats_` and `n_features_`) is for simulations and
    tests; the service keeps statistics in its state store and calls the pure methods.

    Attributes:
        name: the config name (`ucb1`, `linucb`, ...).
        contextual: whether the choice depends on the context x.
        monte_carlo: whether `probabilities` are Monte Carlo estimates (they use rng).
    """

    name: ClassVar[str]
    contextual: ClassVar[bool] = False
    monte_carlo: ClassVar[bool] = False

    stats_: dict[str, FloatArray]
    n_features_: int

    # -- the contract a policy implements ----------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Validate the hyperparameters.

        Raises:
            InvalidInput: a hyperparameter has the wrong type or is out of range; the field is
                `policy.<name>`.
        """

    @abstractmethod
    def _width(self, n_features: int) -> int:
        """Width of the statistics vectors for contexts of n_features."""

    @abstractmethod
    def _pull_rows(self, contexts: FloatArray) -> FloatArray:
        """Pull deltas for a batch of (n, d) contexts, as an (n, width) matrix."""

    @abstractmethod
    def _reward_rows(self, contexts: FloatArray, rewards: FloatArray) -> FloatArray:
        """Reward deltas for a batch of (n, d) contexts and (n,) rewards, as (n, width)."""

    @abstractmethod
    def _probabilities(
        self, stats: FloatArray, x: FloatArray, rng: np.random.Generator
    ) -> FloatArray:
        """Choice probabilities for validated (K, width) stats and context x."""

    def _check_rewards(self, rewards: FloatArray, field: str) -> None:
        """Refuse rewards outside the policy's model (any finite reward is fine by default)."""

    # -- pure maths on statistics ------------------------------------------------------------
    def width(self, n_features: int) -> int:
        """The length of every arm's statistics vector for contexts of `n_features`.

        Non-contextual policies have the same width for every n_features.

        Raises:
            InvalidInput: n_features is negative, or 0 for a contextual policy.
        """
        self._check_features(n_features, "n_features")
        return self._width(n_features)

    def pull_delta(self, x: npt.ArrayLike | None) -> FloatArray:
        """What to add to the chosen arm's statistics when a decision is made.

        Args:
            x: the context (n_features,) of the decision; None for no context.

        Returns:
            A float64 vector of `width(len(x))`.

        Raises:
            InvalidInput: bad hyperparameters or context.
        """
        self.check()
        vec = self._context(x, "x")
        return self._pull_rows(vec[None, :]).reshape(-1)

    def reward_delta(self, x: npt.ArrayLike | None, reward: float) -> FloatArray:
        """What to add to the chosen arm's statistics when a reward arrives for a decision.

        Args:
            x: the context of the decision the reward is for.
            reward: the reward (a finite number; some policies need it in [0, 1]).

        Returns:
            A float64 vector of `width(len(x))`; all zeros for a reward of 0.

        Raises:
            InvalidInput: bad hyperparameters, context or reward.
        """
        self.check()
        vec = self._context(x, "x")
        value = np.array([as_reward(reward)])
        self._check_rewards(value, "reward")
        return self._reward_rows(vec[None, :], value).reshape(-1)

    def probabilities(
        self, stats: npt.ArrayLike, x: npt.ArrayLike | None, rng: np.random.Generator
    ) -> FloatArray:
        """The probability that the policy chooses each arm.

        Args:
            stats: (K, width) statistics, one row per arm (zeros for an arm never seen).
            x: the context (n_features,); None for no context (non-contextual policies).
            rng: randomness for Monte Carlo policies (others do not draw from it).

        Returns:
            A (K,) vector of non-negative probabilities summing to 1.

        Raises:
            InvalidInput: bad hyperparameters, statistics, context or rng.
        """
        table, vec = self._inputs(stats, x)
        return self._probabilities(table, vec, as_rng(rng))

    def choose(
        self, stats: npt.ArrayLike, x: npt.ArrayLike | None, rng: np.random.Generator
    ) -> tuple[int, float]:
        """Choose an arm; deterministic given the rng state.

        The arm is drawn from `probabilities(stats, x, rng)` (computed from the same rng
        state first), so the propensity is exactly the chance with which it was chosen.

        Returns:
            (row index of the chosen arm, its propensity).

        Raises:
            InvalidInput: as `probabilities`.
        """
        probs = self.probabilities(stats, x, rng)
        index = draw(probs, rng)
        return index, float(probs[index])

    # -- stateful convenience ----------------------------------------------------------------
    def fit(
        self,
        contexts: npt.ArrayLike | None,
        arms: Sequence[str] | npt.NDArray[np.str_],
        rewards: npt.ArrayLike,
    ) -> Self:
        """Forget all statistics, then sum the pull and reward deltas of a log of decisions.

        Args:
            contexts: (n, n_features) contexts; None for non-contextual logs.
            arms: (n,) the arm chosen at each decision.
            rewards: (n,) the reward each decision earned.

        Returns:
            The policy itself, with `stats_` and `n_features_` set.

        Raises:
            InvalidInput: bad hyperparameters, or inputs of the wrong shape or values.
        """
        self.check()
        names = as_arms(arms, "arms", allow_empty=True)
        table = as_contexts(contexts, len(names))
        values = as_rewards(rewards, len(names))
        self._check_rewards(values, "rewards")
        self._check_features(table.shape[1], "contexts")
        width = self._width(table.shape[1])
        found, groups = np.unique(names, return_inverse=True)
        sums = np.zeros((len(found), width))
        step = max(1, _CHUNK_CELLS // width)
        for start in range(0, len(names), step):
            rows = slice(start, start + step)
            deltas = self._pull_rows(table[rows]) + self._reward_rows(table[rows], values[rows])
            order = np.argsort(groups[rows], kind="stable")
            keys = groups[rows][order]
            heads = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            sums[keys[heads]] += np.add.reduceat(deltas[order], heads, axis=0)
        self.stats_ = {str(arm): sums[i] for i, arm in enumerate(found)}
        self.n_features_ = table.shape[1]
        return self

    def partial_fit(self, x: npt.ArrayLike | None, arm: str, reward: float) -> Self:
        """Add one decision (its pull and its reward at once) to `stats_`.

        Raises:
            InvalidInput: bad hyperparameters, context, arm or reward, or a context whose
                length differs from earlier ones.
        """
        self.check()
        vec = self._context(x, "x")
        self._check_known_features(len(vec), "x")
        if not isinstance(arm, str):
            raise InvalidInput(f"arm: must be a string, got {arm!r}", field="arm")
        value = np.array([as_reward(reward)])
        self._check_rewards(value, "reward")
        delta = self._pull_rows(vec[None, :])[0] + self._reward_rows(vec[None, :], value)[0]
        if not hasattr(self, "stats_"):
            self.stats_ = {}
            self.n_features_ = len(vec)
        previous = self.stats_.get(arm)
        self.stats_[arm] = delta if previous is None else previous + delta
        return self

    def select(
        self, x: npt.ArrayLike | None, arms: Sequence[str], rng: np.random.Generator
    ) -> Selection:
        """Choose one of `arms` from the learned statistics (zeros for arms not seen).

        Args:
            x: the context; once fitted, it must have `n_features_` values (even for a
                non-contextual policy, so that a caller's mistake shows early).
            arms: the arms to choose from, each once.
            rng: the randomness of the choice.

        Returns:
            The chosen arm and its propensity.

        Raises:
            InvalidInput: no arms, repeated arms, or a bad context.
        """
        names = as_arms(arms, "arms", allow_empty=False)
        if len(set(names.tolist())) != len(names):
            raise InvalidInput("arms: must not repeat an arm", field="arms")
        self.check()
        vec = self._context(x, "x")
        self._check_known_features(len(vec), "x")
        zeros = np.zeros(self._width(len(vec)))
        learned = getattr(self, "stats_", {})
        stats = np.stack([learned.get(str(arm), zeros) for arm in names])
        index, propensity = self.choose(stats, vec, rng)
        return Selection(str(names[index]), propensity)

    # -- helpers -----------------------------------------------------------------------------
    def _inputs(
        self, stats: npt.ArrayLike, x: npt.ArrayLike | None
    ) -> tuple[FloatArray, FloatArray]:
        """Checked hyperparameters, then validated (K, width) stats and context."""
        self.check()
        vec = self._context(x, "x")
        note = f" for a context of {len(vec)} features" if self.contextual else ""
        return as_stats(stats, self._width(len(vec)), note=note), vec

    def _context(self, x: npt.ArrayLike | None, field: str) -> FloatArray:
        vec = as_context(x, field)
        if self.contextual and len(vec) == 0:
            raise InvalidInput(f"{field}: {self.name} needs at least one feature", field=field)
        return vec

    def _check_features(self, n_features: int, field: str) -> None:
        if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer):
            raise InvalidInput(f"{field}: must be an integer, got {n_features!r}", field=field)
        if n_features < (1 if self.contextual else 0):
            raise InvalidInput(
                f"{field}: {self.name} cannot use {n_features} features", field=field
            )

    def _check_known_features(self, n_features: int, field: str) -> None:
        known = getattr(self, "n_features_", None)
        if known is not None and n_features != known:
            raise InvalidInput(
                f"{field}: must have {known} features (as fitted), got {n_features}", field=field
            )
