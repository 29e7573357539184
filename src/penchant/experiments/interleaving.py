"""Team-draft interleaving: compare two rankers on one surface by the clicks on a merged list.

Each impression shows one list drafted from both rankings (Radlinski, Kurup and Joachims,
2008); each position remembers which team (ranker) put its item there, so a click is a vote
for that team. Every user sees both rankers at once, which is why interleaving needs far
fewer users than an A/B test on click-through to detect the same gap.

Conventions: team 0 is ranker A, team 1 is ranker B. `credit` returns +1 when A wins an
impression and -1 when B wins it; `preference` reports B's share of the decided impressions,
so a positive `delta` means B (usually the candidate) is preferred.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from penchant.errors import InvalidInput


@dataclass(frozen=True)
class Interleaved:
    """One interleaved list and the team behind each position.

    Built by `team_draft`; rebuild it from an impression log to credit its clicks.

    Attributes:
        items: the item ids, best position first, none repeated.
        teams: per position, 0 when ranker A's team picked the item and 1 for B's.
    """

    items: tuple[str, ...]
    teams: tuple[int, ...]

    def __post_init__(self) -> None:
        items, teams = tuple(self.items), tuple(self.teams)
        if len(items) != len(teams):
            raise InvalidInput(f"{len(items)} items but {len(teams)} teams", field="teams")
        if len(set(items)) != len(items):
            raise InvalidInput("an interleaved list repeats an item", field="items")
        if any(isinstance(t, bool) or t not in (0, 1) for t in teams):
            raise InvalidInput("teams must be 0 (A) or 1 (B)", field="teams")
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "teams", tuple(int(t) for t in teams))


def _ranking(items: Sequence[str], field: str) -> Sequence[str]:
    if isinstance(items, str | bytes):  # a string is a sequence of characters, not of ids
        raise InvalidInput(f"{field} must be a sequence of item ids, not a string", field=field)
    if len(set(items)) != len(items):
        raise InvalidInput(f"ranking {field} lists an item twice", field=field)
    return items


def team_draft(a: Sequence[str], b: Sequence[str], k: int, rng: np.random.Generator) -> Interleaved:
    """Interleave two rankings by team draft.

    The team that has picked fewer items picks next; when both have picked equally often, a
    fair coin from `rng` decides which picks first. A team picks its highest-ranked item not
    already in the list, so an item both rankings hold goes to whichever team takes it first
    and is never repeated. When one ranking has nothing left to give, the other team goes on
    alone; drafting stops at `k` items or when both rankings are exhausted.

    While both rankings still have items to give, the teams' counts differ by at most one in
    every prefix of the list, and every item comes from its team's top `k`.

    Args:
        a: ranker A's ranking (team 0), best first, without repeats.
        b: ranker B's ranking (team 1), best first, without repeats.
        k: the length of the list to show, at least 0.
        rng: the source of the coin flips.

    Returns:
        The interleaved list with the team of each position.

    Raises:
        InvalidInput: a ranking that repeats an item or is a plain string, or a negative `k`.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise InvalidInput(f"k must be a non-negative integer, got {k!r}", field="k")
    lists = (_ranking(a, "a"), _ranking(b, "b"))
    chosen: set[str] = set()
    items: list[str] = []
    teams: list[int] = []
    counts = [0, 0]
    next_rank = [0, 0]
    while len(items) < k:
        for team in (0, 1):  # skip what the other team already took
            ranking = lists[team]
            while next_rank[team] < len(ranking) and ranking[next_rank[team]] in chosen:
                next_rank[team] += 1
        has_a, has_b = next_rank[0] < len(lists[0]), next_rank[1] < len(lists[1])
        if not (has_a or has_b):
            break
        if has_a and has_b:
            if counts[0] == counts[1]:
                team = int(rng.integers(2))
            else:
                team = 0 if counts[0] < counts[1] else 1
        else:
            team = 0 if has_a else 1
        item = lists[team][next_rank[team]]
        chosen.add(item)
        items.append(item)
        teams.append(team)
        counts[team] += 1
        next_rank[team] += 1
    return Interleaved(tuple(items), tuple(teams))


def credit(interleaved: Interleaved, clicked_positions: Iterable[int]) -> int:
    """Which team won one impression.

    Each clicked position counts once for the team that filled it (a position clicked twice
    is one click).

    Args:
        interleaved: the list that was shown.
        clicked_positions: the 0-based positions the user clicked.

    Returns:
        +1 when A's team got more clicks, -1 when B's did, 0 on a tie or without clicks.

    Raises:
        InvalidInput: a position that is not an integer inside the list.
    """
    n = len(interleaved.items)
    clicks = [0, 0]
    for position in set(clicked_positions):
        if (
            isinstance(position, bool)
            or not isinstance(position, int | np.integer)
            or not 0 <= position < n
        ):
            raise InvalidInput(
                f"clicked position {position!r} is not in a list of {n}", field="clicked_positions"
            )
        clicks[interleaved.teams[int(position)]] += 1
    return (clicks[0] > clicks[1]) - (clicks[0] < clicks[1])


@dataclass(frozen=True)
class InterleavingResult:
    """Which ranker users prefer, from the outcomes of many interleaved impressions.

    Attributes:
        wins_a: impressions where A's team got more clicks.
        wins_b: impressions where B's team got more clicks.
        ties: impressions with equal clicks (or none); they carry no preference.
        share_b: B's share of the decided impressions, `wins_b / (wins_a + wins_b)`; NaN
            when none is decided.
        delta: `(wins_b - wins_a) / (wins_a + wins_b)`, in [-1, 1], positive when B is
            preferred (it equals `2 share_b - 1`); NaN when none is decided.
        p_value: two-sided exact binomial sign test of `share_b = 1/2` over the decided
            impressions; 1 when none is decided.
        ci: the Clopper-Pearson `1 - alpha` interval of `share_b`; `(0, 1)` when none is
            decided.
        alpha: one minus the interval's coverage, and the test's level for `significant`.
    """

    wins_a: int
    wins_b: int
    ties: int
    share_b: float
    delta: float
    p_value: float
    ci: tuple[float, float]
    alpha: float

    @property
    def decided(self) -> int:
        """Impressions one team won."""
        return self.wins_a + self.wins_b

    @property
    def delta_ci(self) -> tuple[float, float]:
        """The interval of `delta`, mapped from that of `share_b`."""
        return (2.0 * self.ci[0] - 1.0, 2.0 * self.ci[1] - 1.0)

    @property
    def significant(self) -> bool:
        """Whether the sign test rejects "no preference" at level `alpha`."""
        return self.p_value < self.alpha


def preference(outcomes: Sequence[int], *, alpha: float = 0.05) -> InterleavingResult:
    """Aggregate per-impression outcomes into a preference between A and B, with its test.

    Args:
        outcomes: one `credit` per impression: +1 (A won), -1 (B won) or 0 (tie).
        alpha: one minus the interval's coverage, in (0, 1).

    Returns:
        The counts, B's share and `delta` among decided impressions, the sign test's p-value
        and the interval of the share.

    Raises:
        InvalidInput: an outcome other than -1, 0 or +1, or an alpha outside (0, 1).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 < alpha < 1.0:
        raise InvalidInput(f"alpha must be in (0, 1), got {alpha!r}", field="alpha")
    values = np.asarray(outcomes)
    if values.ndim != 1 or values.dtype == bool or not np.isin(values, (-1, 0, 1)).all():
        raise InvalidInput("outcomes must be a sequence of -1, 0 and +1", field="outcomes")
    wins_a, wins_b = int((values == 1).sum()), int((values == -1).sum())
    ties = int(values.size) - wins_a - wins_b
    decided = wins_a + wins_b
    if decided == 0:
        return InterleavingResult(0, 0, ties, math.nan, math.nan, 1.0, (0.0, 1.0), float(alpha))
    test = stats.binomtest(wins_b, decided, 0.5)
    interval = test.proportion_ci(confidence_level=1.0 - alpha, method="exact")
    return InterleavingResult(
        wins_a=wins_a,
        wins_b=wins_b,
        ties=ties,
        share_b=wins_b / decided,
        delta=(wins_b - wins_a) / decided,
        p_value=float(test.pvalue),
        ci=(float(interval.low), float(interval.high)),
        alpha=float(alpha),
    )
