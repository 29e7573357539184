"""Non-contextual policies: epsilon-greedy, UCB1 and Beta-Bernoulli Thompson sampling.

Each arm's statistics are `[pulls, reward_sum]`: a pull adds `[1, 0]`, a reward r adds
`[0, r]`. The context is accepted and ignored.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import numpy.typing as npt

from penchant.bandits.base import Policy
from penchant.bandits.sampling import uniform_over_best
from penchant.bandits.validation import FloatArray, count_param, real_param
from penchant.errors import InvalidInput


class _CountingPolicy(Policy):
    """Statistics `[pulls, reward_sum]` per arm, whatever the context."""

    def _width(self, n_features: int) -> int:
        return 2

    def _pull_rows(self, contexts: FloatArray) -> FloatArray:
        rows = np.zeros((len(contexts), 2))
        rows[:, 0] = 1.0
        return rows

    def _reward_rows(self, contexts: FloatArray, rewards: FloatArray) -> FloatArray:
        rows = np.zeros((len(contexts), 2))
        rows[:, 1] = rewards
        return rows


class _ScoringPolicy(_CountingPolicy):
    """A counting policy that ranks arms by a score (epsilon-greedy, UCB1)."""

    def scores(self, stats: npt.ArrayLike) -> FloatArray:
        """Each arm's score (mean reward, or UCB1 index); +inf for an arm never pulled.

        Args:
            stats: (K, 2) statistics.

        Raises:
            InvalidInput: bad hyperparameters or statistics.
        """
        return self._scores(self._inputs(stats, None)[0])

    @abstractmethod
    def _scores(self, stats: FloatArray) -> FloatArray:
        """The scores of validated (K, 2) statistics."""


class EpsilonGreedy(_ScoringPolicy):
    """With probability epsilon a uniformly random arm, otherwise the best mean reward.

    An arm never pulled counts as the best (optimistic: every new arm is tried by the greedy
    part before its mean is trusted). Arms tied for the best share the greedy part equally,
    so each of the g best arms has probability epsilon/K + (1 - epsilon)/g and every other
    arm epsilon/K.

    Args:
        epsilon: the exploration rate, in [0, 1].
    """

    name = "epsilon-greedy"

    def __init__(self, *, epsilon: float = 0.1) -> None:
        self.epsilon = epsilon

    def check(self) -> None:
        """Validate `epsilon` (see `Policy.check`)."""
        real_param("epsilon", self.epsilon, low=0.0, high=1.0)

    def _scores(self, stats: FloatArray) -> FloatArray:
        pulls, total = stats[:, 0], stats[:, 1]
        pulled = pulls > 0
        return np.where(pulled, total / np.where(pulled, pulls, 1.0), np.inf)

    def _probabilities(
        self, stats: FloatArray, x: FloatArray, rng: np.random.Generator
    ) -> FloatArray:
        epsilon = float(self.epsilon)
        return epsilon / len(stats) + (1.0 - epsilon) * uniform_over_best(self._scores(stats))


class UCB1(_ScoringPolicy):
    """Upper confidence bound: the arm with the highest mean + c * sqrt(2 ln N / n).

    n is the arm's pulls and N the pulls of all the arms offered. Arms never pulled come
    first; exact ties (and the never-pulled arms) are chosen uniformly.

    Args:
        c: the exploration scale (1 is Auer et al.'s UCB1), at least 0.
    """

    name = "ucb1"

    def __init__(self, *, c: float = 1.0) -> None:
        self.c = c

    def check(self) -> None:
        """Validate `c` (see `Policy.check`)."""
        real_param("c", self.c, low=0.0)

    def _scores(self, stats: FloatArray) -> FloatArray:
        pulls, total = stats[:, 0], stats[:, 1]
        pulled = pulls > 0
        safe = np.where(pulled, pulls, 1.0)
        log_total = np.log(max(float(pulls[pulled].sum()), 1.0))
        index = total / safe + float(self.c) * np.sqrt(2.0 * log_total / safe)
        return np.where(pulled, index, np.inf)

    def _probabilities(
        self, stats: FloatArray, x: FloatArray, rng: np.random.Generator
    ) -> FloatArray:
        return uniform_over_best(self._scores(stats))


class BetaThompson(_CountingPolicy):
    """Beta-Bernoulli Thompson sampling, with Monte Carlo choice probabilities.

    Rewards must lie in [0, 1] (fractional rewards count as fractional successes). An arm's
    posterior is Beta(prior_alpha + s, prior_beta + n - s) for n pulls and reward sum s; a
    pull whose reward has not arrived yet counts as a failure until it does. Each decision
    draws `n_draws` samples from every arm's posterior, estimates the probability that each
    arm is the best as the share of draws it wins, and draws the arm from that estimate.

    Args:
        prior_alpha: prior successes, > 0.
        prior_beta: prior failures, > 0.
        n_draws: Monte Carlo draws per arm and decision (the default keeps a decision among
            10 arms well under a millisecond).
    """

    name = "thompson"
    monte_carlo = True

    def __init__(
        self, *, prior_alpha: float = 1.0, prior_beta: float = 1.0, n_draws: int = 500
    ) -> None:
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta
        self.n_draws = n_draws

    def check(self) -> None:
        """Validate the priors and `n_draws` (see `Policy.check`)."""
        real_param("prior_alpha", self.prior_alpha, low=0.0, low_open=True)
        real_param("prior_beta", self.prior_beta, low=0.0, low_open=True)
        count_param("n_draws", self.n_draws)

    def _check_rewards(self, rewards: FloatArray, field: str) -> None:
        if ((rewards < 0.0) | (rewards > 1.0)).any():
            raise InvalidInput(f"{field}: {self.name} needs rewards in [0, 1]", field=field)

    def posterior(self, stats: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Each arm's Beta posterior parameters (alpha, beta).

        A reward sum above the pulls (a reward counted before its pull reached the shared
        statistics) counts as no failures rather than a negative count.

        Args:
            stats: (K, 2) statistics.

        Raises:
            InvalidInput: bad hyperparameters or statistics.
        """
        return self._posterior(self._inputs(stats, None)[0])

    def _posterior(self, stats: FloatArray) -> tuple[FloatArray, FloatArray]:
        pulls, total = stats[:, 0], np.maximum(stats[:, 1], 0.0)
        alpha = float(self.prior_alpha) + total
        beta = float(self.prior_beta) + np.maximum(pulls - total, 0.0)
        return alpha, beta

    def _probabilities(
        self, stats: FloatArray, x: FloatArray, rng: np.random.Generator
    ) -> FloatArray:
        alpha, beta = self._posterior(stats)
        n_draws = int(self.n_draws)
        samples = rng.beta(alpha[:, None], beta[:, None], size=(len(stats), n_draws))
        wins = np.bincount(samples.argmax(axis=0), minlength=len(stats))
        return wins / n_draws
