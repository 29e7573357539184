"""Retention: delete each event type's events once they are older than its configured days.

`privacy.retention_days` maps an event type to the days its events are kept; `"*"` covers
every type not named, and a type no rule covers is kept until erased. `penchant privacy
retention` runs `run_retention` once; the service runs it on a timer (`RetentionScheduler`).
Deletes go in small committed chunks, so a run killed midway keeps what it deleted and the
next run finishes the job.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from penchant.errors import ConfigError
from penchant.jobs.store import opened_store
from penchant.schema.common import utcnow
from penchant.settings import Settings
from penchant.store import EventFilter, Store

logger = logging.getLogger("penchant.jobs.retention")

#: The rule of `privacy.retention_days` that covers every event type not named.
EVERY_OTHER_TYPE = "*"
#: Rows deleted per committed transaction.
DEFAULT_BATCH_SIZE = 10_000
DAY_S = 86_400.0
_FIELD = "privacy.retention_days"
_EARLIEST = datetime.min.replace(tzinfo=UTC)

#: Called with a line of what retention is doing (for a status display).
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RetentionLine:
    """What retention did to one event type.

    Attributes:
        type: the event type.
        rule: the key of `privacy.retention_days` that applied: the type itself or `"*"`.
        days: how many days its events are kept.
        cutoff: events stamped before this were deleted.
        deleted: rows deleted; in a dry run, the rows that would be.
    """

    type: str
    rule: str
    days: float
    cutoff: datetime
    deleted: int


@dataclass(frozen=True)
class RetentionReport:
    """One retention run over one tenant.

    Attributes:
        tenant: the tenant.
        dry_run: rows were counted, not deleted.
        at: the time the cutoffs were computed from.
        lines: one per event type covered by a rule, sorted by type.
        stopped: the run was asked to stop before it reached every type.
    """

    tenant: str
    dry_run: bool
    at: datetime
    lines: tuple[RetentionLine, ...] = ()
    stopped: bool = False

    @property
    def deleted(self) -> int:
        """Rows deleted (or, in a dry run, that would be) over every type."""
        return sum(line.deleted for line in self.lines)

    def as_json(self) -> dict[str, object]:
        """The report as JSON values: tenant, dry_run, types (type, days, cutoff, deleted)."""
        return {
            "tenant": self.tenant,
            "dry_run": self.dry_run,
            "types": [
                {
                    "type": line.type,
                    "rule": line.rule,
                    "days": line.days,
                    "cutoff": line.cutoff.isoformat(),
                    "deleted": line.deleted,
                }
                for line in self.lines
            ],
            "deleted": self.deleted,
        }


def check_rules(rules: Mapping[str, float]) -> None:
    """Refuse retention rules that cannot be meant.

    Raises:
        ConfigError: a type is empty, or its days are negative or not a finite number.
    """
    for event_type, days in rules.items():
        if not event_type.strip():
            raise ConfigError(f"{_FIELD}: an empty event type", field=_FIELD)
        if not math.isfinite(days) or days < 0:
            raise ConfigError(
                f"{_FIELD}.{event_type}: days must be a finite number >= 0, got {days}",
                field=_FIELD,
            )


def cutoff(now: datetime, days: float) -> datetime:
    """The time before which events kept for `days` have expired (the earliest one, if far)."""
    try:
        return now - timedelta(days=days)
    except OverflowError:
        return _EARLIEST


def retention_plan(
    rules: Mapping[str, float], stored_types: Iterable[str], now: datetime
) -> list[RetentionLine]:
    """Which types retention covers, by which rule, and their cutoffs (nothing deleted yet).

    Args:
        rules: `privacy.retention_days`.
        stored_types: the tenant's event types, for the `"*"` rule.
        now: the time the cutoffs count back from.

    Returns:
        A line per named type and per stored type only `"*"` covers, sorted by type, each
        with `deleted` 0.
    """
    chosen = {t: t for t in rules if t != EVERY_OTHER_TYPE}
    if EVERY_OTHER_TYPE in rules:
        chosen.update({t: EVERY_OTHER_TYPE for t in stored_types if t not in chosen})
    return [
        RetentionLine(t, rule, rules[rule], cutoff(now, rules[rule]), 0)
        for t, rule in sorted(chosen.items())
    ]


def run_retention(
    settings: Settings,
    tenant: str | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    store: Store | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> RetentionReport:
    """Delete a tenant's events older than `settings.privacy.retention_days` allows.

    Each type is deleted in chunks of `batch_size` rows, each committed on its own, so a run
    killed midway keeps what it deleted and the next run deletes the rest (and counts only
    that). Runs are idempotent, so several processes may run it at once.

    Args:
        settings: the deployment; its `privacy.retention_days` are the rules.
        tenant: whose events; default `settings.tenant`.
        now: the time cutoffs count back from; default the current time.
        dry_run: count the rows that would be deleted, delete nothing.
        batch_size: rows per committed transaction.
        store: the store to use; default one opened from the settings (and closed after).
        progress: told what is being done, type by type.
        stop: when set, the run ends after the type in progress (the report says so).

    Returns:
        The cutoff and the count of each type; no lines when no retention is configured.

    Raises:
        ConfigError: a rule is invalid (see `check_rules`).
        StoreError: the store failed; the chunks committed before stay deleted.
    """
    tenant = tenant or settings.tenant
    at = now or utcnow()
    rules = settings.privacy.retention_days
    check_rules(rules)
    if not rules:
        return RetentionReport(tenant, dry_run, at)
    lines: list[RetentionLine] = []
    with nullcontext(store) if store is not None else opened_store(settings) as opened:
        stored = opened.events.event_types(tenant) if EVERY_OTHER_TYPE in rules else []
        for line in retention_plan(rules, stored, at):
            if stop is not None and stop.is_set():
                return RetentionReport(tenant, dry_run, at, tuple(lines), stopped=True)
            if progress is not None:
                verb = "counting" if dry_run else "deleting"
                progress(f"{line.type}: {verb} events before {line.cutoff:%Y-%m-%d %H:%M} UTC")
            if dry_run:
                where = EventFilter(types=(line.type,), until=line.cutoff)
                n = opened.events.count(tenant, where)
            else:
                n = opened.events.delete_before(
                    tenant, line.type, line.cutoff, batch_size=batch_size
                )
            lines.append(RetentionLine(line.type, line.rule, line.days, line.cutoff, n))
    return RetentionReport(tenant, dry_run, at, tuple(lines))


class RetentionScheduler:
    """A daemon thread that runs `run_retention` every `interval_s` until stopped.

    The first run starts `delay_s` after `start()` (not at once, so that it does not compete
    with a starting service), each next one `interval_s` after the previous one ended. A
    failed run is logged and recorded in `last_error`; the thread goes on.

    Args:
        settings: the deployment (its tenant and `privacy.retention_days`).
        interval_s: seconds between runs.
        delay_s: seconds from `start()` to the first run.
        batch_size: rows per committed transaction.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        interval_s: float = DAY_S,
        delay_s: float = 60.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.delay_s = delay_s
        self.batch_size = batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: RetentionReport | None = None
        self._last_error: str | None = None
        self._runs = 0

    def start(self) -> None:
        """Start the thread (a no-op when it runs already)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="penchant-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread: at once when it waits, after the type in progress when it runs.

        Args:
            timeout: how long to wait for the thread to end, in seconds. A thread still
                deleting then is a daemon: it dies with the process, and its uncommitted
                chunk is rolled back.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def runs(self) -> int:
        """How many runs have ended (well or not)."""
        return self._runs

    @property
    def last(self) -> RetentionReport | None:
        """The report of the last run that succeeded."""
        return self._last

    @property
    def last_error(self) -> str | None:
        """Why the last run failed, or None if it did not."""
        return self._last_error

    def _loop(self) -> None:
        wait = self.delay_s
        while not self._stop.wait(wait):
            self._run_once()
            wait = self.interval_s

    def _run_once(self) -> None:
        try:
            report = run_retention(self.settings, batch_size=self.batch_size, stop=self._stop)
        except Exception as exc:  # never let one run end the thread
            logger.exception("retention: the run failed")
            self._last_error = f"{type(exc).__name__}: {exc}"
        else:
            self._last, self._last_error = report, None
            counts = ", ".join(f"{line.type} {line.deleted}" for line in report.lines)
            logger.info(
                "retention: %d events deleted for tenant %s (%s)",
                report.deleted,
                report.tenant,
                counts or "no types",
            )
        finally:
            self._runs += 1


def start_retention(settings: Settings) -> RetentionScheduler | None:
    """Start a daily `RetentionScheduler` if any retention is configured, else return None.

    Raises:
        ConfigError: a rule is invalid (checked here, so a service refuses to start).
    """
    if not settings.privacy.retention_days:
        return None
    check_rules(settings.privacy.retention_days)
    scheduler = RetentionScheduler(settings)
    scheduler.start()
    return scheduler
