"""Differentially private engagement: noise scale, contribution bounds, budget, CLI."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from penchant.cli import app
from penchant.errors import BudgetExceeded, InvalidInput
from penchant.privacy.dp import (
    SegmentCounts,
    bounded_counts,
    budget_status,
    calibrate,
    privatize,
    release_engagement,
    segment_name,
    sensitivity,
)
from penchant.schema import Event, User
from penchant.settings import load_settings
from penchant.store import Store, open_store
from penchant.store.sql.tables import dp_releases

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
FIXED = [SegmentCounts("free", 40, 300, 30), SegmentCounts("pro", 12, 110, 25)]


def seed(store: Store, tenant: str = "shop") -> None:
    """u1 clicks 1,000 times; u4 has no plan; u5 is not in the catalog; one anonymous event."""
    store.catalog.upsert_users(
        tenant,
        [
            User(id="u1", attributes={"plan": "free"}),
            User(id="u2", attributes={"plan": "free"}),
            User(id="u3", attributes={"plan": "pro"}),
            User(id="u4", attributes={}),
        ],
    )

    def ev(user: str | None, kind: str, n: int, minutes: int = 0) -> list[Event]:
        at = T0 + timedelta(minutes=minutes)
        return [Event(user_id=user, session_id="s", type=kind, timestamp=at) for _ in range(n)]

    store.events.append(
        tenant,
        ev("u1", "click", 1_000)
        + ev("u1", "impression", 3)
        + ev("u2", "impression", 12)
        + ev("u2", "click", 2)
        + ev("u3", "impression", 4)
        + ev("u3", "view", 1)
        + ev("u4", "impression", 5)
        + ev("u5", "click", 1)
        + ev(None, "click", 50)
        + ev("u3", "click", 7, minutes=120),
    )


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    seed(opened)
    yield opened
    opened.close()


def test_empirical_noise_scale_is_within_5_percent_of_the_laplace_scale() -> None:
    releases = 5_000  # 30,000 noisy cells: the estimates' standard errors are under 1%
    truth = np.array([[c.users, c.impressions, c.clicks] for c in FIXED], dtype=float).ravel()
    noise = np.empty((releases, truth.size))
    for i in range(releases):
        release = privatize(FIXED, epsilon=1.0, max_per_user=10)
        noise[i] = [v for s in release.segments for v in (s.users, s.impressions, s.clicks)]
    noise -= truth
    b = release.noise_scale

    assert b == pytest.approx(sensitivity(10) / 1.0) == pytest.approx(21.0)
    assert np.mean(np.abs(noise)) / b == pytest.approx(1.0, abs=0.05)  # E|X| = b
    assert np.std(noise) / (math.sqrt(2) * b) == pytest.approx(1.0, abs=0.05)
    assert abs(np.mean(noise)) < 0.05 * b  # unbiased


@pytest.mark.parametrize("epsilon", [0.1, 0.3, 1.0, 2.5, 7.0])
def test_opendp_privacy_map_gives_the_requested_epsilon(epsilon: float) -> None:
    measurement, scale = calibrate(epsilon, 10)

    loss = measurement.map(sensitivity(10))
    assert loss <= epsilon
    assert loss == pytest.approx(epsilon, rel=1e-12)
    assert scale == pytest.approx(21.0 / epsilon, rel=1e-12)
    release = privatize(FIXED, epsilon=epsilon)
    assert (release.epsilon, release.noise_scale) == (epsilon, scale)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_epsilon_is_refused(epsilon: float) -> None:
    with pytest.raises(InvalidInput):
        calibrate(epsilon, 10)


def test_each_users_contribution_is_bounded(store: Store) -> None:
    both = bounded_counts(store, "shop", by="plan", max_per_user=10)
    without_u1 = bounded_counts(store, "shop", by="plan", max_per_user=10, exclude=["u1"])

    by_name = {c.segment: c for c in both}
    # u5 (not in the catalog) and u4 (no plan) are "unknown"; the anonymous clicks are left
    # out; u2's 12 impressions count as 10.
    assert by_name["free"] == SegmentCounts("free", 2, 3 + 10, 10 + 2)
    assert by_name["pro"] == SegmentCounts("pro", 1, 4, 7)
    assert by_name["unknown"] == SegmentCounts("unknown", 2, 5, 1)
    free_without = next(c for c in without_u1 if c.segment == "free")
    assert free_without == SegmentCounts("free", 1, 10, 2)
    moved = (
        abs(by_name["free"].users - free_without.users)
        + abs(by_name["free"].impressions - free_without.impressions)
        + abs(by_name["free"].clicks - free_without.clicks)
    )
    assert by_name["free"].clicks - free_without.clicks <= 10
    assert moved <= sensitivity(10)
    unbounded = bounded_counts(store, "shop", by="plan", max_per_user=10_000)
    assert next(c for c in unbounded if c.segment == "free").clicks == 1_002


def test_public_segments_and_window(store: Store) -> None:
    counts = bounded_counts(
        store, "shop", by="plan", segments=["pro", "enterprise"], until=T0 + timedelta(hours=1)
    )

    # Unlisted segments are dropped; a listed one without users is still there.
    assert counts == [SegmentCounts("pro", 1, 4, 0), SegmentCounts("enterprise", 0, 0, 0)]
    release = privatize(counts, epsilon=1.0)
    assert [s.segment for s in release.segments] == ["pro", "enterprise"]
    assert all(s.ctr is None or 0.0 <= s.ctr <= 1.0 for s in release.segments)
    late = bounded_counts(store, "shop", by="plan", since=T0 + timedelta(hours=1))
    assert [(c.segment, c.users, c.clicks) for c in late] == [("pro", 1, 7)]


def test_segment_names() -> None:
    assert segment_name(None) == segment_name("") == segment_name([]) == "unknown"
    assert segment_name(True) == "true"
    assert segment_name(3) == "3"
    assert segment_name(["b", "a"]) == "a|b"


def releases(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(dp_releases)).scalar_one())


def test_budget_refuses_the_release_that_would_exceed_it(store_url: str) -> None:
    store = open_store(store_url)
    try:
        seed(store)
        now = datetime.now(UTC)

        def release(epsilon: float, at: datetime) -> None:
            release_engagement(
                store, "shop", by="plan", epsilon=epsilon, budget=2.5, window_s=3600, now=at
            )

        release(2.0, now - timedelta(hours=2))  # outside the window by now
        release(1.0, now - timedelta(minutes=30))
        release(1.0, now)
        with pytest.raises(BudgetExceeded, match="privacy budget exceeded") as refused:
            release(1.0, now)
        assert refused.value.code == "privacy_budget_exceeded"
        assert releases(store) == 3  # the refused release recorded nothing
        status = budget_status(store, "shop", total=2.5, window_s=3600, now=now)
        assert (status.spent, status.left) == (2.0, 0.5)
        release(0.5, now)
        assert budget_status(store, "shop", total=2.5, window_s=3600, now=now).left == 0.0
        # Another tenant has a budget of its own.
        release_engagement(store, "other", by="plan", epsilon=2.5, budget=2.5, window_s=3600)
    finally:
        store.close()


def test_concurrent_releases_cannot_overspend(store_url: str) -> None:
    store = open_store(store_url)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def release() -> None:
        try:
            release_engagement(store, "shop", by="plan", epsilon=1.0, budget=3.0, window_s=60)
            ok = True
        except BudgetExceeded:
            ok = False
        with lock:
            outcomes.append(ok)

    try:
        threads = [threading.Thread(target=release) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == [False] * 5 + [True] * 3
        assert releases(store) == 3
    finally:
        store.close()


runner = CliRunner()


def test_cli_report_then_refusal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = open_store(load_settings(data).store_url)
    seed(store, "default")
    store.close()
    args = ["privacy", "report", "--by", "plan", "--data-dir", str(data)]

    first = runner.invoke(app, [*args, "--segments", "free,pro", "--epsilon", "6", "--json"])
    assert first.exit_code == 0, first.output
    report = orjson.loads(first.stdout)
    assert (report["report"], report["tenant"], report["by"]) == ("engagement", "default", "plan")
    assert (report["epsilon"], report["noise_scale"]) == (6.0, pytest.approx(21.0 / 6.0))
    assert report["budget"] == {"window_s": 86400.0, "total": 10.0, "spent": 6.0, "left": 4.0}
    assert [s["segment"] for s in report["segments"]] == ["free", "pro"]
    assert set(report["segments"][0]) == {"segment", "users", "impressions", "clicks", "ctr"}

    text = runner.invoke(app, [*args, "--since", "2026-01-01", "--epsilon", "3"])
    assert text.exit_code == 0, text.output
    assert "epsilon 3" in text.stdout and "noise scale 7" in text.stdout
    assert "1 left" in text.stdout

    refused = runner.invoke(app, [*args, "--epsilon", "2", "--json"])
    assert refused.exit_code == 1, refused.output
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: privacy budget exceeded"), lines
    assert "Traceback" not in refused.output and refused.stdout == ""

    bad = runner.invoke(app, [*args, "--since", "yesterday"])
    assert bad.exit_code == 1 and "--since" in bad.stderr
