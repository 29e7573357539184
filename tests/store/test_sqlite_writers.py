"""Several processes writing one SQLite file queue up and every write lands exactly once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from penchant.schema import Event
from penchant.store import open_store


def _id(worker: int, batch: int, row: int) -> str:
    return f"b{batch}-{row}" if row % 2 == 0 else f"w{worker}-b{batch}-{row}"


def _writer(url: str, worker: int, batches: int) -> None:
    store = open_store(url)
    for b in range(batches):
        # Even rows carry the same ids in every worker, so the writers also collide.
        events = [
            Event(event_id=_id(worker, b, i), user_id=f"u{i}", type="click") for i in range(50)
        ]
        store.events.append("default", events)
    store.close()


def test_concurrent_processes_store_each_event_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'penchant.db'}"
    open_store(url).close()  # migrate once, before the writers race
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(url, w, 15)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    store = open_store(url)
    ids = [e.event_id for batch in store.events.scan("default") for e in batch]
    store.close()
    assert len(ids) == len(set(ids))
    expected = {_id(w, b, i) for w in range(3) for b in range(15) for i in range(50)}
    assert set(ids) == expected
