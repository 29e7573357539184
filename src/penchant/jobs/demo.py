"""The demo job: a simulated world, written to files and ingested through the real importers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from penchant.ingest.bulk import ImportReport
from penchant.ingest.world import World, WorldConfig
from penchant.jobs.evaluate import EvaluateOptions, evaluate_stored
from penchant.jobs.imports import import_catalog_file, import_events
from penchant.jobs.init import InitResult, init_data_dir
from penchant.jobs.stats import stats
from penchant.jobs.store import settings_store
from penchant.jobs.train import TrainResult, train
from penchant.settings import Settings

#: The models the demo trains and compares.
DEMO_MODELS = ("popular", "itemknn", "ials", "bpr", "ease", "taste")
#: A small shop: enough data to show every event type, quick enough for a laptop.
DEMO_WORLD = WorldConfig(n_users=2_000, n_items=1_500, n_categories=12, days=21, seed=7)


@dataclass
class DemoReport:
    """What the demo made and loaded.

    Attributes:
        init: the data directory, config and admin key.
        world_dir: the generated files, and the world's ground truth under `truth/`.
        world: the world's own summary (what was generated).
        items, users: reports of the catalog imports.
        events: the report of the event import.
        stats: the store's counts and data-quality report after the import.
        evaluation: metrics.json of the models trained and judged on the stored events.
        report_dir: where the evaluation report was written.
        training: the model version trained on all the events and made active (served).
        seconds: wall time of the whole demo.
    """

    init: InitResult
    world_dir: Path
    world: dict[str, Any]
    items: dict[str, Any]
    users: dict[str, Any]
    events: ImportReport
    stats: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    report_dir: Path | None = None
    training: TrainResult | None = None
    seconds: float = 0.0


def run_demo(
    settings: Settings, console: Console | None = None, *, config: WorldConfig = DEMO_WORLD
) -> DemoReport:
    """Create a data directory, generate a world, import it as a user would, and train models.

    The world's catalog is written as JSONL and its event log as Parquet under
    `<data dir>/demo-world/`, then loaded with the same import code as `penchant import`:
    validation, rejects file, idempotent chunks. Running it again stores nothing twice.
    Then the stored events are split in time (the newest 20% of interactions held out) and
    the standard models are trained and judged on them, with the report written to
    `<data dir>/reports/demo-evaluation/`. Last, the configured models are trained on every
    event into a new model version, made active for serving.

    Args:
        settings: the settings of the data directory.
        console: where to draw progress, or None.
        config: the world to generate.

    Returns:
        What was generated and loaded.
    """
    started = time.perf_counter()
    init = init_data_dir(settings)
    world_dir = settings.data_dir / "demo-world"
    world = World.generate(config)
    world.save(world_dir / "truth")
    items, users = world_dir / "items.jsonl", world_dir / "users.jsonl"
    _write_jsonl(items, [i.model_dump(mode="json") for i in world.items()])
    _write_jsonl(users, [u.model_dump(mode="json") for u in world.users()])
    events = world_dir / "events.parquet"
    _write_events(events, world)
    store = settings_store(settings)
    try:
        item_report = import_catalog_file(settings, store, items, "items", format="jsonl")
        user_report = import_catalog_file(settings, store, users, "users", format="jsonl")
        event_report = import_events(settings, store, events, format="parquet", console=console)
        counts = stats(store, settings.tenant)
        report_dir = settings.data_dir / "reports" / "demo-evaluation"
        options = EvaluateOptions(
            dataset=settings.data_dir,
            output=report_dir,
            protocol="temporal",
            models=DEMO_MODELS,
            ks=(10, 20),
            seed=config.seed,
        )
        evaluation = evaluate_stored(store, settings.tenant, options, console=console)
        training = train(settings, store, console=console)
    finally:
        store.close()
    return DemoReport(
        init=init,
        world_dir=world_dir,
        world=world.summary(),
        items=item_report.as_dict(),
        users=user_report.as_dict(),
        events=event_report,
        stats=counts,
        evaluation=evaluation,
        report_dir=report_dir,
        training=training,
        seconds=time.perf_counter() - started,
    )


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records one per line; unchanged content keeps the file (and its import) as is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = b"".join(orjson.dumps(r) + b"\n" for r in records)
    if not path.exists() or path.read_bytes() != content:
        path.write_bytes(content)


def _write_events(path: Path, world: World) -> None:
    """The world's event log as Parquet, with a UTC timestamp column and the context as JSON."""
    if path.exists():
        return  # the same config always writes the same events
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    writer: pq.ParquetWriter | None = None
    try:
        for table in world.events(batch_size=100_000):
            ts = table.column("ts").cast(pa.timestamp("us", tz="UTC"))
            table = table.drop_columns(["ts"]).append_column("timestamp", ts)
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    partial.rename(path)
