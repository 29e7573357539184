"""A simulated shop to run experiments in: a world, its history stored, models trained."""

from __future__ import annotations

from rich.console import Console

from penchant.ingest.world import World, WorldConfig
from penchant.jobs.init import InitResult, init_data_dir
from penchant.jobs.store import settings_store
from penchant.jobs.train import train
from penchant.settings import Settings

#: The models a simulated shop trains: the non-personalized baseline and personalized ones.
SIMULATION_MODELS = ("popular", "itemknn", "ials", "taste")


def prepare_world(
    settings: Settings,
    config: WorldConfig,
    console: Console | None = None,
    *,
    models: tuple[str, ...] = SIMULATION_MODELS,
) -> tuple[InitResult, World]:
    """Create the data directory, store a generated world's catalog and history, and train
    `models` on it (served at once). The world's truth is saved under `world/` in the data
    directory, so that a later run can load it instead of drawing it again.

    Returns:
        The data directory's init result (its admin key file) and the world.
    """
    init = init_data_dir(settings)
    world = World.generate(config)
    world.save(settings.data_dir / "world")
    store = settings_store(settings)
    try:
        store.catalog.upsert_items(settings.tenant, world.items())
        store.catalog.upsert_users(settings.tenant, world.users())
        for table in world.events(batch_size=100_000):
            store.events.append_table(settings.tenant, table)
        train(settings, store, models=models, activate=True, console=console)
    finally:
        store.close()
    return init, world
