"""The impression log stores every served list from a writer process, and flushes on close."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from penchant.schema import Event
from penchant.service.impressions import Impressions, ServedList, StoreAddress
from penchant.store import EventFilter, open_store


def served(i: int) -> ServedList:
    items = [f"i{i}-{p}" for p in range(3)]
    return ServedList(f"r{i}", f"u{i % 4}", None, items, "home", "tv", None, 1_700_000_000 + i)


def impressions(url: str) -> list[Event]:
    store = open_store(url)
    try:
        found = EventFilter(types=("impression",))
        return [e for batch in store.events.scan("t", found) for e in batch]
    finally:
        store.close()


def test_close_stores_every_queued_list(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    open_store(url).close()  # created and migrated, as the service does before workers start
    log = Impressions(StoreAddress(url), interval_s=0.05, batch=7)
    log.start()
    for i in range(40):
        log.log("t", served(i))
    log.close()
    stored = impressions(url)
    assert len(stored) == 40 * 3
    by_request = {(e.context.request_id, e.context.position): e for e in stored}
    assert by_request[("r5", 2)].item_id == "i5-2" and by_request[("r5", 2)].user_id == "u1"
    assert {e.context.surface for e in stored} == {"home"}
    assert all(e.event_id is None for e in stored)


def test_lists_beyond_the_queue_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    open_store(url).close()
    log = Impressions(StoreAddress(url), max_queued=5)  # not started: nothing drains it
    for i in range(8):
        log.log("t", served(i))
    assert log.dropped == 3
    log.start()
    log.close()
    assert len(impressions(url)) == 5 * 3


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_writer_runs_on_idle_cpu_time_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    open_store(url).close()
    log = Impressions(StoreAddress(url), interval_s=0.05)
    log.start()
    try:
        log.log("t", served(0))
        deadline = time.monotonic() + 30
        while (log._writer is None or log._writer.pid is None) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log._writer is not None and log._writer.pid is not None
        pid = log._writer.pid
        while os.sched_getscheduler(pid) != os.SCHED_IDLE and time.monotonic() < deadline:
            time.sleep(0.05)  # set by the worker as soon as the writer has started
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(
            19, os.getpriority(os.PRIO_PROCESS, 0) + 10
        )
    finally:
        log.close()
    assert len(impressions(url)) == 3
