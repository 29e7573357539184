"""Differentially private engagement aggregates per segment, through OpenDP, under a budget.

What is protected: adding or removing one user's whole data (user-level adjacency). Each
user belongs to exactly one segment, and what one user adds to the released cells is bounded
before any noise is drawn: 1 to the user count of their segment, and at most `max_per_user`
to each event metric (impressions, clicks). The L1 sensitivity of the vector of all released
cells is therefore `1 + 2 * max_per_user`, and Laplace noise of scale `sensitivity / epsilon`
on every cell makes the whole release epsilon-DP. Rates are post-processing of the noisy
counts and cost nothing more.

Events without a user id (anonymous sessions) are left out: their contribution cannot be
bounded per person.

Every release spends its epsilon from a per-tenant budget per sliding window, kept in the
`dp_releases` table; a release that would overspend is refused and records nothing.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, func, select, text

from penchant.errors import BudgetExceeded, InvalidInput, import_extra
from penchant.privacy.consent import WithoutConsent
from penchant.schema.common import AttributeValue, as_utc, to_micros
from penchant.store import Store
from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.tables import dp_releases

REPORT = "engagement"
UNKNOWN = "unknown"
DEFAULT_MAX_PER_USER = 10
#: Relative slack of float comparisons (summed epsilons, the privacy map's answer).
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SegmentCounts:
    """The exact, contribution-bounded aggregates of one segment (never released as is)."""

    segment: str
    users: int
    impressions: int
    clicks: int


@dataclass(frozen=True)
class NoisySegment:
    """The released aggregates of one segment: noisy counts and the rate computed from them.

    Attributes:
        ctr: noisy clicks / noisy impressions clipped to [0, 1]; None when the noisy
            impressions are not positive.
    """

    segment: str
    users: float
    impressions: float
    clicks: float
    ctr: float | None


@dataclass(frozen=True)
class Release:
    """One differentially private release.

    Attributes:
        epsilon: the privacy loss of the whole release, as OpenDP's privacy map states it.
        noise_scale: the Laplace scale b of the noise on every cell (std = sqrt(2) * b).
        sensitivity: the L1 sensitivity of all released cells under user-level adjacency.
    """

    report: str
    epsilon: float
    noise_scale: float
    sensitivity: float
    segments: tuple[NoisySegment, ...]


@dataclass(frozen=True)
class Budget:
    """A tenant's privacy budget in the current window."""

    window_s: float
    total: float
    spent: float
    left: float


def bounded_counts(
    store: Store,
    tenant: str,
    *,
    by: str,
    since: datetime | None = None,
    until: datetime | None = None,
    segments: Sequence[str] | None = None,
    exclude: Collection[str] | WithoutConsent = (),
    max_per_user: int = DEFAULT_MAX_PER_USER,
    impression_types: Collection[str] = ("impression",),
    click_types: Collection[str] = ("click",),
) -> list[SegmentCounts]:
    """Exact per-segment aggregates with each user's contribution bounded.

    A user counts once in `users` when they have any event in `[since, until)`; their
    impressions and clicks are each clamped to `max_per_user`.

    Args:
        by: the user attribute whose value is the segment; missing or empty: "unknown".
        segments: the public list of segment names, in the order to report them. Users of
            other segments are dropped, and listed segments without users are still reported
            (as zeros here, with noise once released). None derives the names from the data:
            the set of names is then not protected, which is acceptable only when the
            attribute's values are public.
        exclude: user ids to leave out, e.g. `without_consent(..., Purpose.ANALYTICS, ...)`.
        max_per_user: the most impressions and the most clicks one user adds.

    Raises:
        InvalidInput: an empty attribute name or a bound below 1.
    """
    if not by:
        raise InvalidInput("a segment attribute is required", field="by")
    if max_per_user < 1:
        raise InvalidInput("max_per_user must be at least 1", field="max_per_user")
    excluded = exclude if isinstance(exclude, WithoutConsent) else set(exclude)
    users: set[str] = set()
    shown: dict[str, int] = defaultdict(int)
    clicked: dict[str, int] = defaultdict(int)
    for table in store.events.interactions(tenant, since):
        table = _in_window(table, until)
        for user, kind, n in _per_user(table):
            if user in excluded:
                continue
            users.add(user)
            if kind in impression_types:
                shown[user] += n
            if kind in click_types:
                clicked[user] += n
    found = _segments_of(store, tenant, by, users)
    names = list(dict.fromkeys(segments)) if segments is not None else sorted(set(found.values()))
    rows = {name: [0, 0, 0] for name in names}
    for user in users:
        row = rows.get(found.get(user, UNKNOWN))
        if row is not None:
            row[0] += 1
            row[1] += min(shown[user], max_per_user)
            row[2] += min(clicked[user], max_per_user)
    return [SegmentCounts(name, *rows[name]) for name in names]


def _in_window(table: pa.Table, until: datetime | None) -> pa.Table:
    keep = pc.is_valid(table["user_id"])
    if until is not None:
        end = pa.scalar(as_utc(until), type=pa.timestamp("us", tz="UTC"))
        keep = pc.and_(keep, pc.less(table["timestamp"], end))
    return table.filter(keep)


def _per_user(table: pa.Table) -> Iterable[tuple[str, str, int]]:
    """(user, event type, events) for every pair present in a batch."""
    if table.num_rows == 0:
        return []
    plain = pa.table(
        {
            "user_id": table["user_id"].cast(pa.string()),
            "type": table["type"].cast(pa.string()),
        }
    )
    counted = plain.group_by(["user_id", "type"]).aggregate([([], "count_all")])
    return zip(
        counted["user_id"].to_pylist(),
        counted["type"].to_pylist(),
        counted["count_all"].to_pylist(),
        strict=True,
    )


def _segments_of(store: Store, tenant: str, by: str, wanted: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for batch in store.catalog.scan_users(tenant):
        for user in batch:
            if user.id in wanted:
                found[user.id] = segment_name(user.attributes.get(by))
    return found


def segment_name(value: AttributeValue) -> str:
    """The segment of an attribute value: one name per user, whatever the value's type.

    Lists name the segment of their sorted values joined by "|", so a user is never counted
    in two segments; None, "" and [] are "unknown".
    """
    if isinstance(value, list):
        return "|".join(sorted(segment_name(v) for v in value)) if value else UNKNOWN
    if value is None or value == "":
        return UNKNOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sensitivity(max_per_user: int) -> float:
    """The L1 sensitivity of all cells: one user, one segment, 1 + 2 bounded metrics."""
    return float(1 + 2 * max_per_user)


def laplace(scale: float) -> Any:
    """OpenDP's Laplace measurement on a vector of float cells with the L1 input metric.

    Raises:
        ConfigError: OpenDP is not installed (the `penchant[dp]` extra).
    """
    # an extra: imported only when a report is made
    dp = import_extra("opendp.prelude", "dp", "differentially private reports", field=None)
    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    return dp.m.make_laplace(*space, scale=scale)


@functools.lru_cache(maxsize=64)
def calibrate(epsilon: float, max_per_user: int) -> tuple[Any, float]:
    """The measurement that makes a whole release epsilon-DP, and its noise scale.

    The scale starts at `sensitivity / epsilon` and is nudged up by a few ulps, when OpenDP's
    rounding needs it, until the privacy map states a loss of at most `epsilon`.

    Raises:
        InvalidInput: epsilon is not a positive finite number.
        RuntimeError: OpenDP's privacy map disagrees with the requested epsilon.
    """
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InvalidInput(f"epsilon must be positive, got {epsilon}", field="epsilon")
    d_in = sensitivity(max_per_user)
    scale = d_in / epsilon
    measurement = laplace(scale)
    for _ in range(16):
        if float(measurement.map(d_in)) <= epsilon:
            break
        scale = math.nextafter(scale, math.inf)
        measurement = laplace(scale)
    loss = float(measurement.map(d_in))
    if loss > epsilon or not math.isclose(loss, epsilon, rel_tol=_TOLERANCE):
        raise RuntimeError(f"OpenDP maps sensitivity {d_in} to epsilon {loss}, not {epsilon}")
    return measurement, scale


def privatize(
    counts: Sequence[SegmentCounts], *, epsilon: float, max_per_user: int = DEFAULT_MAX_PER_USER
) -> Release:
    """Release bounded counts with Laplace noise from OpenDP: epsilon-DP for all cells together.

    Args:
        counts: aggregates from `bounded_counts` with the same `max_per_user`.
        epsilon: the privacy loss of this release.
    """
    measurement, scale = calibrate(epsilon, max_per_user)
    cells = [float(v) for c in counts for v in (c.users, c.impressions, c.clicks)]
    noisy = [float(v) for v in measurement(cells)] if cells else []
    segments = []
    for i, row in enumerate(counts):
        users, impressions, clicks = noisy[3 * i : 3 * i + 3]
        ctr = None if impressions <= 0 else min(max(clicks / impressions, 0.0), 1.0)
        segments.append(NoisySegment(row.segment, users, impressions, clicks, ctr))
    return Release(REPORT, epsilon, scale, sensitivity(max_per_user), tuple(segments))


def release_engagement(
    store: Store,
    tenant: str,
    *,
    by: str,
    epsilon: float,
    budget: float,
    window_s: float,
    since: datetime | None = None,
    until: datetime | None = None,
    segments: Sequence[str] | None = None,
    exclude: Collection[str] | WithoutConsent = (),
    max_per_user: int = DEFAULT_MAX_PER_USER,
    impression_types: Collection[str] = ("impression",),
    click_types: Collection[str] = ("click",),
    now: datetime | None = None,
) -> Release:
    """Release engagement per segment, spending `epsilon` from the tenant's window budget.

    The budget check, the ledger row and the noise happen in one write transaction, so two
    concurrent releases cannot both pass the check and no noisy answer exists unrecorded.
    Arguments not listed are those of `bounded_counts`.

    Args:
        budget: the total epsilon the tenant may spend within any window of `window_s`.
        now: the time of the release (default: now).

    Raises:
        BudgetExceeded: the release would take the window's spending over `budget`; nothing
            is recorded.
        InvalidInput: a bad epsilon, attribute or bound.
    """
    counts = bounded_counts(
        store,
        tenant,
        by=by,
        since=since,
        until=until,
        segments=segments,
        exclude=exclude,
        max_per_user=max_per_user,
        impression_types=impression_types,
        click_types=click_types,
    )
    calibrate(epsilon, max_per_user)  # refuse a bad epsilon before spending anything
    at = to_micros(now or datetime.now(UTC))
    with write_tx(store.engine) as conn:
        _lock(conn, tenant)
        spent = _spent(conn, tenant, at, window_s)
        if spent + epsilon > budget * (1 + _TOLERANCE):
            raise BudgetExceeded(
                f"privacy budget exceeded for tenant {tenant!r}: this release needs epsilon "
                f"{epsilon:g} but {max(budget - spent, 0.0):g} of {budget:g} is left in the "
                f"current {window_s:g} s window"
            )
        conn.execute(
            dp_releases.insert().values(tenant=tenant, report=REPORT, epsilon=epsilon, at=at)
        )
        return privatize(counts, epsilon=epsilon, max_per_user=max_per_user)


def budget_status(
    store: Store, tenant: str, *, total: float, window_s: float, now: datetime | None = None
) -> Budget:
    """How much of the tenant's budget the releases of the current window have spent."""
    at = to_micros(now or datetime.now(UTC))
    with read_tx(store.engine) as conn:
        spent = _spent(conn, tenant, at, window_s)
    return Budget(window_s, total, spent, max(total - spent, 0.0))


def _spent(conn: Connection, tenant: str, at: int, window_s: float) -> float:
    start = at - int(window_s * 1_000_000)
    query = select(func.coalesce(func.sum(dp_releases.c.epsilon), 0.0)).where(
        # Later rows count too: another worker's clock may run ahead of this one.
        dp_releases.c.tenant == tenant,
        dp_releases.c.at > start,
    )
    return float(conn.execute(query).scalar_one())


def _lock(conn: Connection, tenant: str) -> None:
    """Serialize the budget check of one tenant on PostgreSQL (SQLite writers already are)."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"penchant.dp:{tenant}".encode(), digest_size=8).digest()
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": int.from_bytes(digest, "big", signed=True)},
    )
