"""The service's background trainer: retrain on a timer or after new events, in a child process.

Training runs as `penchant train --json --quiet` in a separate Python process at a lower
CPU priority, so fitting never holds the serving process's GIL and yields the CPU to
requests. The child publishes (and, with `training.auto_activate`, activates) a new model
version; serving workers notice through `ModelRegistry.marker`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from penchant.settings import Settings, settings_environment

logger = logging.getLogger("penchant.jobs.trainer")

#: What the child process runs: lower its own priority, then the `penchant` command line.
#: (Lowering it in the child itself avoids `preexec_fn`, which is unsafe in a threaded
#: parent such as the service.)
CHILD_CODE = (
    "import os\n"
    "try:\n"
    "    os.nice(10)\n"
    "except (AttributeError, OSError):\n"
    "    pass\n"
    "from penchant.cli.app import app\n"
    "app(prog_name='penchant')\n"
)


def child_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a training child: `base` without stale settings, plus `settings`."""
    fields = {name.upper() for name in Settings.model_fields}
    inherited = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if not (key.startswith("PENCHANT_") and key[9:].split("__")[0] in fields)
    }
    return {**inherited, **settings_environment(settings)}


def train_command(settings: Settings, *, models: Sequence[str] | None = None) -> list[str]:
    """The command line of a training child for these settings (run it with `child_environment`).

    It uses the running interpreter, so the child trains with the same installation.
    """
    command = [sys.executable, "-c", CHILD_CODE, "train", "--data-dir", str(settings.data_dir)]
    if models:
        command += ["--models", ",".join(models)]
    return [*command, "--json", "--quiet"]


class BackgroundTrainer:
    """A daemon thread that retrains in a child process when it is time, one run at a time.

    A training starts when `settings.training.interval_s` (> 0) has passed since the last
    one began, when `after_events` (> 0) new events have arrived since then, when `due`
    says so (erasures waiting for their retraining), or on `trigger()`. A failed training
    is logged and recorded in `last`; the thread goes on.

    Args:
        settings: the deployment; the child rebuilds exactly these settings.
        new_events: a counter of events the caller has accepted that never goes down (for
            example the service's ingest counter). The trainer reads it when a training
            starts, so "new" means "since the last training began". A counter that goes
            down (restarted, or one that already counts since the last training) is taken
            to count from zero.
        poll_s: how often the thread checks the clock and the counter.
        timeout_s: a training running longer than this is killed and recorded as failed.
        due: asked every `due_poll_s` whether a training is due for another reason (the
            service: an erasure's rebuild); errors in it are logged, not raised.
        due_poll_s: how often `due` is asked.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        new_events: Callable[[], int],
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        due: Callable[[], bool] | None = None,
        due_poll_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.new_events = new_events
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.due = due
        self.due_poll_s = due_poll_s
        self.command = train_command(settings)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[str] | None = None
        self._last: dict[str, Any] | None = None
        self._running = False
        self._trainings = 0

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread (a no-op when it runs already)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="penchant-trainer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread; a training in progress is terminated (its version is not made).

        Args:
            timeout: how long to wait for the thread to end, in seconds.
        """
        self._stop.set()
        self._wake.set()
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
        if self._thread is not None:
            self._thread.join(timeout)

    def trigger(self) -> None:
        """Train as soon as possible (after the training in progress, if one is)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether a training is in progress."""
        return self._running

    @property
    def alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def trainings(self) -> int:
        """How many trainings have ended (well or not) since the trainer was made."""
        return self._trainings

    @property
    def last(self) -> dict[str, Any] | None:
        """The outcome of the last training: `ok`, `version`, `activated` or `error`, times."""
        last = self._last
        return None if last is None else dict(last)

    # -- the thread -------------------------------------------------------------------------
    def _count(self) -> int:
        try:
            return int(self.new_events())
        except Exception:  # the caller's counter failing must not end the trainer
            logger.exception("background trainer: counting new events failed")
            return 0

    def _is_due(self) -> bool:
        if self.due is None:
            return False
        try:
            return bool(self.due())
        except Exception:  # a failing check must not end the trainer
            logger.exception("background trainer: the due check failed")
            return False

    def _loop(self) -> None:
        training = self.settings.training
        baseline = self._count()
        since = asked = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            if self._stop.is_set():
                break
            reason = None
            if self._wake.is_set():
                self._wake.clear()
                reason = "manual"
            elif training.interval_s > 0 and time.monotonic() - since >= training.interval_s:
                reason = "interval"
            elif training.after_events > 0:
                count = self._count()
                if count < baseline:
                    baseline = 0
                if count - baseline >= training.after_events:
                    reason = "events"
            if reason is None and time.monotonic() - asked >= self.due_poll_s:
                asked = time.monotonic()
                reason = "due" if self._is_due() else None
            if reason is None:
                continue
            baseline = self._count()
            since = time.monotonic()
            self._train(reason)

    def _train(self, reason: str) -> None:
        started_at = datetime.now(UTC).isoformat()
        started = time.perf_counter()
        self._running = True
        try:
            outcome = self._run_child()
        except Exception as exc:  # never let one training end the thread
            logger.exception("background trainer: could not run a training")
            outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            self._running = False
        outcome.update(
            trigger=reason,
            started_at=started_at,
            finished_at=datetime.now(UTC).isoformat(),
            seconds=round(time.perf_counter() - started, 3),
        )
        if outcome["ok"]:
            logger.info("background trainer: version %s made (%s)", outcome["version"], reason)
        else:
            logger.warning("background trainer: training failed: %s", outcome["error"])
        self._last = outcome
        self._trainings += 1

    def _run_child(self) -> dict[str, Any]:
        with self._lock:
            if self._stop.is_set():
                return {"ok": False, "error": "stopped before it began"}
            child = subprocess.Popen(
                self.command,
                env=child_environment(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            self._child = child
        try:
            stdout, stderr = child.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            return {"ok": False, "error": f"training ran longer than {self.timeout_s} s"}
        finally:
            with self._lock:
                self._child = None
        if self._stop.is_set() and child.returncode != 0:
            return {"ok": False, "error": "stopped while training"}
        if child.returncode != 0:
            return {"ok": False, "error": _last_line(stderr) or f"exit code {child.returncode}"}
        try:
            result = orjson.loads(stdout)
        except orjson.JSONDecodeError:
            return {"ok": False, "error": f"unreadable training output: {stdout[-200:]!r}"}
        return {"ok": True, "version": result["version"], "activated": result["activated"]}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line.removeprefix("error: ")
