"""Retention: per-type TTLs delete expired events, report counts, and survive a kill midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from penchant.cli import app
from penchant.errors import ConfigError
from penchant.jobs.retention import RetentionScheduler, run_retention, start_retention
from penchant.schema import Event
from penchant.schema.common import to_micros, utcnow
from penchant.service.app import create_app
from penchant.settings import Settings, load_settings
from penchant.store import EVENT_TABLE_SCHEMA, EventFilter, Store, events_to_table, open_store

NOW = datetime(2024, 6, 1, tzinfo=UTC)
TYPES = ("click", "view", "purchase")


def aged(n: int, kind: str, days: float, now: datetime = NOW) -> Event:
    """Event `{kind}{n}` stamped `days` before `now`."""
    return Event(
        event_id=f"{kind}{n}",
        user_id=f"u{n % 7}",
        item_id=f"i{n % 5}",
        type=kind,
        timestamp=now - timedelta(days=days),
    )


def settings_of(path: Path, store_url: str, rules: dict[str, float]) -> Settings:
    return load_settings(path, store={"url": store_url}, privacy={"retention_days": rules})


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """Tenant t: each type at ages 1..60 days; tenant o: clicks at the same ages."""
    store = open_store(store_url)
    store.events.append("t", [aged(d, kind, d) for d in range(1, 61) for kind in TYPES])
    store.events.append("o", [aged(d, "click", d) for d in range(1, 61)])
    yield store
    store.close()


def ids(store: Store, tenant: str, kind: str) -> set[str | None]:
    where = EventFilter(types=(kind,))
    return {e.event_id for batch in store.events.scan(tenant, where) for e in batch}


def test_expired_rows_of_each_named_type_go_and_the_rest_stay(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    settings = settings_of(tmp_path, store_url, {"click": 30, "view": 7.5})
    report = run_retention(settings, "t", now=NOW, batch_size=7, store=store)

    got = {line.type: (line.rule, line.days, line.cutoff, line.deleted) for line in report.lines}
    assert got == {
        "click": ("click", 30, NOW - timedelta(days=30), 30),  # day 30 itself is kept
        "view": ("view", 7.5, NOW - timedelta(days=7.5), 53),
    }
    assert report.deleted == 83 and not report.dry_run and report.tenant == "t"
    assert ids(store, "t", "click") == {f"click{d}" for d in range(1, 31)}
    assert ids(store, "t", "view") == {f"view{d}" for d in range(1, 8)}
    assert len(ids(store, "t", "purchase")) == 60  # no rule: kept
    assert store.events.count("o") == 60  # another tenant's rows are not touched
    again = run_retention(settings, "t", now=NOW, store=store)
    assert [line.deleted for line in again.lines] == [0, 0]


def test_star_covers_every_type_not_named(store: Store, store_url: str, tmp_path: Path) -> None:
    settings = settings_of(tmp_path, store_url, {"click": 100, "*": 10, "never": 1})
    report = run_retention(settings, "t", now=NOW, store=store)

    assert [(line.type, line.rule, line.deleted) for line in report.lines] == [
        ("click", "click", 0),
        ("never", "never", 0),
        ("purchase", "*", 50),
        ("view", "*", 50),
    ]
    assert store.events.count("t") == 60 + 10 + 10
    assert store.events.event_types("t") == ["click", "purchase", "view"]  # "never" not made


def test_a_dry_run_counts_and_deletes_nothing(store: Store, store_url: str, tmp_path: Path) -> None:
    settings = settings_of(tmp_path, store_url, {"click": 30, "*": 59})
    report = run_retention(settings, "t", now=NOW, dry_run=True, store=store)

    assert report.dry_run
    assert [(line.type, line.deleted) for line in report.lines] == [
        ("click", 30),
        ("purchase", 1),
        ("view", 1),
    ]
    assert store.events.count("t") == 180
    real = run_retention(settings, "t", now=NOW, store=store)
    assert real.deleted == report.deleted == 32


def test_no_rules_deletes_nothing_and_bad_rules_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    report = run_retention(settings_of(tmp_path, url, {}), "t")
    assert report.lines == () and report.deleted == 0
    assert start_retention(settings_of(tmp_path, url, {})) is None
    for bad in ({"click": -1.0}, {"click": float("nan")}, {" ": 3.0}):
        with pytest.raises(ConfigError, match="retention_days"):
            run_retention(settings_of(tmp_path, url, bad), "t")
    # A TTL too long for the calendar expires nothing rather than failing.
    far = run_retention(settings_of(tmp_path, url, {"click": 1e12}), "t", now=NOW)
    assert far.lines[0].deleted == 0


# -- the command line ---------------------------------------------------------------------
def configure(data: Path, rules: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "penchant.toml").write_text(f"[privacy]\nretention_days = {rules}\n")


def seed(data: Path, events: Sequence[Event] | pa.Table, tenant: str = "t") -> None:
    store = open_store(f"sqlite:///{data / 'penchant.db'}")
    try:
        table = events if isinstance(events, pa.Table) else events_to_table(events)
        store.events.append_table(tenant, table)
    finally:
        store.close()


def aged_table(ids: Sequence[str], kinds: Sequence[str], days: Sequence[float]) -> pa.Table:
    """Events in bulk (as many `aged` events would be, without building each one)."""
    now = to_micros(utcnow())
    n = len(ids)
    return pa.table(
        {
            "event_id": ids,
            "user_id": [f"u{i % 7}" for i in range(n)],
            "session_id": pa.nulls(n, pa.string()),
            "item_id": [f"i{i % 5}" for i in range(n)],
            "type": kinds,
            "value": pa.nulls(n, pa.float64()),
            "ts": [now - int(d * 86_400_000_000) for d in days],
            "context": pa.nulls(n, pa.string()),
        },
        schema=EVENT_TABLE_SCHEMA,
    )


def retention_json(*args: str | Path) -> dict[str, object]:
    result = CliRunner().invoke(app, ["privacy", "retention", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    report: dict[str, object] = orjson.loads(result.stdout)
    return report


def test_the_command_prints_json_counts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    configure(data, '{ click = 30, "*" = 10 }')
    now = utcnow()
    seed(data, [aged(d, kind, d, now) for d in (1, 20, 40) for kind in ("click", "view")])

    dry = retention_json("--data-dir", data, "--tenant", "t", "--dry-run")
    report = retention_json("--data-dir", data, "--tenant", "t")

    assert dry["dry_run"] is True and report["dry_run"] is False
    assert report["tenant"] == "t" and report["deleted"] == dry["deleted"] == 3
    lines = report["types"]
    assert isinstance(lines, list)
    assert [(x["type"], x["rule"], x["days"], x["deleted"]) for x in lines] == [
        ("click", "click", 30, 1),
        ("view", "*", 10, 2),
    ]
    cutoff = datetime.fromisoformat(lines[0]["cutoff"])
    assert abs(cutoff - (now - timedelta(days=30))) < timedelta(minutes=5)
    assert retention_json("--data-dir", data, "--tenant", "t")["deleted"] == 0


def test_the_command_prints_a_table_or_says_nothing_is_configured(tmp_path: Path) -> None:
    runner = CliRunner()
    bare = runner.invoke(app, ["privacy", "retention", "--data-dir", str(tmp_path / "none")])
    assert bare.exit_code == 0 and "No retention is configured" in bare.stdout
    data = tmp_path / "data"
    configure(data, "{ click = 30 }")
    seed(data, [aged(1, "click", 400, utcnow())], tenant="default")
    shown = runner.invoke(app, ["privacy", "retention", "--data-dir", str(data)])
    assert shown.exit_code == 0, shown.output
    assert "click" in shown.stdout and "1 event deleted in all" in shown.stdout
    empty = retention_json("--data-dir", tmp_path / "none")
    assert empty["types"] == [] and empty["deleted"] == 0


@pytest.mark.slow
def test_a_run_killed_midway_loses_nothing_and_the_next_run_finishes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    configure(data, "{ click = 30 }")
    now = utcnow()
    # Expired clicks interleaved with views no rule covers, then clicks still kept.
    n = 15_000
    seed(
        data,
        aged_table(
            [f"{kind}{i}" for i in range(n) for kind in ("click", "view")],
            ["click", "view"] * n,
            [days for i in range(n) for days in (40 + i % 300, 90)],
        ),
    )
    seed(data, aged_table([f"kept{i}" for i in range(2_000)], ["click"] * 2_000, [20] * 2_000))
    seed(data, aged_table([f"o{i}" for i in range(1_000)], ["click"] * 1_000, [90] * 1_000), "o")
    store = open_store(f"sqlite:///{data / 'penchant.db'}")
    expired = EventFilter(types=("click",), until=now - timedelta(days=30))
    try:
        first = subprocess.Popen(
            command(data, "--batch-size", "10"),
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            left = wait_for_partial_progress(store, expired, first, total=n)
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL
        after_kill = store.events.count("t", expired)
        assert 0 < after_kill <= left < n

        # The same command again (in this process: a second interpreter costs seconds).
        report = retention_json("--data-dir", data, "--tenant", "t")
        assert report["deleted"] == after_kill  # it counts only what the first run left

        assert store.events.count("t", expired) == 0
        assert ids(store, "t", "click") == {f"kept{i}" for i in range(2_000)}
        assert store.events.count("t", EventFilter(types=("view",))) == n
        assert store.events.count("o") == 1_000
    finally:
        store.close()


def command(data: Path, *options: str) -> list[str]:
    """`penchant privacy retention` as its own process (`python -m penchant`)."""
    return [
        sys.executable, "-m", "penchant", "privacy", "retention",
        "--data-dir", str(data), "--tenant", "t", "--json", *options,
    ]  # fmt: skip


def environment() -> dict[str, str]:
    """This environment without settings that would override the data directory's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PENCHANT_")}


def wait_for_partial_progress(
    store: Store, expired: EventFilter, process: subprocess.Popen[bytes], *, total: int
) -> int:
    """Poll until some but not all expired rows are gone; return how many were left then."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = store.events.count("t", expired)
        if 0 < left < total:
            return left
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the run ended before it could be killed: {err.decode()[-500:]}")
        time.sleep(0.01)
    pytest.fail("the run deleted nothing within 60 s")


# -- the scheduler and the service --------------------------------------------------------
def test_the_scheduler_runs_repeatedly_survives_failures_and_stops_promptly(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url)
    try:
        store.events.append("default", [aged(1, "click", 40, utcnow())])
        scheduler = RetentionScheduler(
            settings_of(tmp_path, url, {"click": 30}), interval_s=0.05, delay_s=0.0
        )
        scheduler.start()
        wait_until(lambda: scheduler.runs >= 3)
        assert store.events.count("default") == 0
        assert scheduler.last is not None and scheduler.last_error is None
        started = time.monotonic()
        scheduler.stop()
        assert not scheduler.alive and time.monotonic() - started < 2.0

        failing = RetentionScheduler(
            settings_of(tmp_path, url, {"click": -1}), interval_s=0.05, delay_s=0.0
        )
        failing.start()
        wait_until(lambda: failing.runs >= 2)
        assert failing.alive and "ConfigError" in (failing.last_error or "")
        failing.stop()
        assert not failing.alive
    finally:
        store.close()


def test_a_long_wait_is_cut_short_by_stop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    scheduler = RetentionScheduler(settings_of(tmp_path, url, {"click": 30}), delay_s=3600.0)
    scheduler.start()
    started = time.monotonic()
    scheduler.stop()
    assert not scheduler.alive and scheduler.runs == 0
    assert time.monotonic() - started < 2.0


def test_the_service_runs_retention_only_when_configured(tmp_path: Path) -> None:
    def running() -> bool:
        return any(t.name == "penchant-retention" for t in threading.enumerate())

    for rules, expected in (({}, False), ({"click": 30.0}, True)):
        settings = load_settings(tmp_path / str(expected), privacy={"retention_days": rules})
        with TestClient(create_app(settings)):
            assert running() is expected
        assert not running()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
