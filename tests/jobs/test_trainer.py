"""The background trainer: when it trains, in a child process, and how it survives failures."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from penchant.jobs.init import init_data_dir
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import opened_store
from penchant.jobs.trainer import BackgroundTrainer, child_environment, train_command
from penchant.schema import Event
from penchant.settings import Settings, load_settings

T0 = datetime(2024, 3, 1, tzinfo=UTC)
#: A stand-in child that answers like `penchant train --json` at once (for the scheduling).
FAKE_OK = [sys.executable, "-c", 'print(\'{"version": "v", "activated": true}\')']


def clicks(n: int) -> list[Event]:
    return [
        Event(
            event_id=f"e{k}",
            user_id=f"u{k % 20}",
            item_id=f"i{(k * 7) % 15}",
            type="click",
            timestamp=T0 + timedelta(minutes=k),
        )
        for k in range(n)
    ]


def make_settings(tmp_path: Path, **training: object) -> Settings:
    settings = load_settings(
        tmp_path / "data", training={"models": ["popular", "itemknn"], **training}
    )
    init_data_dir(settings)
    return settings


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_the_child_rebuilds_exactly_these_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, params={"itemknn": {"k": 5}}, after_events=3)
    settings = settings.model_copy(update={"tenant": "shop"})
    stale = {"PENCHANT_TENANT": "other", "PENCHANT_TRAINING__AFTER_EVENTS": "9", "HOME": "/h"}
    env = child_environment(settings, stale)
    assert env["HOME"] == "/h" and "PENCHANT_TRAINING__AFTER_EVENTS" not in env
    for key in [k for k in os.environ if k.startswith("PENCHANT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("PENCHANT_"):
            monkeypatch.setenv(key, value)
    assert load_settings() == settings
    command = train_command(settings)
    assert command[0] == sys.executable and command[-2:] == ["--json", "--quiet"]
    assert command[command.index("--data-dir") + 1] == str(settings.data_dir)


@pytest.mark.slow
def test_new_events_start_a_training_that_serves_a_new_version(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, after_events=100)
    with opened_store(settings) as store:
        store.events.append("default", clicks(300))
    counter = [40]
    trainer = BackgroundTrainer(settings, new_events=lambda: counter[0], poll_s=0.05)
    trainer.start()
    try:
        time.sleep(0.3)
        assert trainer.trainings == 0  # 0 new events since the start
        counter[0] = 140
        wait_for(lambda: trainer.trainings == 1)
        last = trainer.last
        assert last is not None and last["ok"], last
        assert last["trigger"] == "events" and last["activated"]
        assert ModelRegistry.of(settings).active() == last["version"]
        assert ModelRegistry.of(settings).load().models["itemknn"].recommend(["u1"], k=2)
        time.sleep(0.3)
        assert trainer.trainings == 1  # counted from the start of that training
    finally:
        trainer.stop()
    assert not trainer.alive and not trainer.running


@pytest.mark.slow
def test_a_failed_training_is_recorded_and_the_trainer_goes_on(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # no events yet: the training fails
    trainer = BackgroundTrainer(settings, new_events=lambda: 0, poll_s=0.05)
    trainer.start()
    try:
        trainer.trigger()
        wait_for(lambda: trainer.trainings == 1)
        failed = trainer.last
        assert failed is not None and not failed["ok"] and failed["trigger"] == "manual"
        assert failed["error"] == (
            "tenant 'default' has no events to train on; import or send some first"
        )
        assert trainer.alive

        with opened_store(settings) as store:
            store.events.append("default", clicks(200))
        trainer.trigger()
        wait_for(lambda: trainer.trainings == 2)
        last = trainer.last
        assert last is not None and last["ok"], last
        assert ModelRegistry.of(settings).active() == last["version"]
    finally:
        trainer.stop()


def test_the_interval_starts_trainings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, interval_s=0.2)
    trainer = BackgroundTrainer(settings, new_events=lambda: 0, poll_s=0.02)
    trainer.command = FAKE_OK
    trainer.start()
    try:
        wait_for(lambda: trainer.trainings >= 2, timeout=30)
    finally:
        trainer.stop()
    last = trainer.last
    assert last is not None and last["ok"] and last["trigger"] == "interval"


def test_a_due_check_starts_a_training_and_a_failing_one_does_not(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # interval_s = 0, after_events = 0
    answers = [RuntimeError("store down"), False, True]

    def due() -> bool:
        answer = answers.pop(0) if answers else False
        if isinstance(answer, Exception):
            raise answer
        return answer

    trainer = BackgroundTrainer(
        settings, new_events=lambda: 0, poll_s=0.02, due=due, due_poll_s=0.05
    )
    trainer.command = FAKE_OK
    trainer.start()
    try:
        wait_for(lambda: trainer.trainings >= 1, timeout=30)
        time.sleep(0.3)
    finally:
        trainer.stop()
    last = trainer.last
    assert trainer.trainings == 1 and last is not None and last["trigger"] == "due"


def test_nothing_starts_a_training_when_both_triggers_are_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # interval_s = 0, after_events = 0
    trainer = BackgroundTrainer(settings, new_events=lambda: 10**9, poll_s=0.02)
    trainer.command = FAKE_OK
    trainer.start()
    time.sleep(0.3)
    trainer.stop()
    assert trainer.trainings == 0 and trainer.last is None


def test_a_broken_counter_or_child_does_not_end_the_thread(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, after_events=1)

    def broken() -> int:
        raise RuntimeError("counter down")

    trainer = BackgroundTrainer(settings, new_events=broken, poll_s=0.02)
    trainer.command = [sys.executable, "-c", "print('not json')"]
    trainer.start()
    try:
        time.sleep(0.2)
        assert trainer.alive and trainer.trainings == 0
        trainer.trigger()
        wait_for(lambda: trainer.trainings == 1)
        last = trainer.last
        assert last is not None and "unreadable training output" in last["error"]
        trainer.command = [sys.executable, "-c", "import sys; sys.exit('error: boom')"]
        trainer.trigger()
        wait_for(lambda: trainer.trainings == 2)
        assert trainer.last is not None and trainer.last["error"] == "boom"
        trainer.command = ["/nonexistent/python"]
        trainer.trigger()
        wait_for(lambda: trainer.trainings == 3)
        assert trainer.last is not None and "FileNotFoundError" in trainer.last["error"]
        assert trainer.alive
    finally:
        trainer.stop()


def test_stop_ends_a_training_in_progress(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    trainer = BackgroundTrainer(settings, new_events=lambda: 0, poll_s=0.02)
    trainer.command = [sys.executable, "-c", "import time; time.sleep(60)"]
    trainer.start()
    trainer.trigger()
    wait_for(lambda: trainer.running, timeout=10)
    started = time.monotonic()
    trainer.stop(timeout=10)
    assert time.monotonic() - started < 5 and not trainer.alive
    assert trainer.last is not None and trainer.last["error"].startswith("stopped")


def test_a_training_past_its_timeout_is_killed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    trainer = BackgroundTrainer(settings, new_events=lambda: 0, poll_s=0.02, timeout_s=0.5)
    trainer.command = [sys.executable, "-c", "import time; time.sleep(60)"]
    trainer.start()
    try:
        trainer.trigger()
        wait_for(lambda: trainer.trainings == 1, timeout=20)
    finally:
        trainer.stop()
    assert trainer.last is not None and "longer than 0.5 s" in trainer.last["error"]
