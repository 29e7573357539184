"""The train job: one versioned bundle of every configured model, from a tenant's events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from penchant import __version__
from penchant.errors import Conflict, InvalidInput
from penchant.jobs.init import init_data_dir
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import opened_store
from penchant.jobs.train import train
from penchant.schema import Event
from penchant.settings import Settings, load_settings
from penchant.testing.synthetic import planted_blocks

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def events(n_users: int = 150, n_items: int = 50, rng: int = 0) -> list[Event]:
    """Clicks of planted groups (user u takes items of group u % 2) over 30 random days."""
    data = planted_blocks(n_users=n_users, n_items=n_items, rng=rng)
    minutes = np.random.default_rng(rng).integers(0, 30 * 24 * 60, size=len(data))
    return [
        Event(
            event_id=f"e{n}",
            user_id=str(data.user_ids[u]),
            item_id=str(data.item_ids[i]),
            type="click",
            timestamp=T0 + timedelta(minutes=int(m)),
        )
        for n, (u, i, m) in enumerate(zip(data.users, data.items, minutes, strict=True))
    ]


def data_dir(tmp_path: Path, stored: list[Event], **training: object) -> Settings:
    settings = load_settings(tmp_path / "data", training=training)
    init_data_dir(settings)
    if stored:
        with opened_store(settings) as store:
            store.events.append(settings.tenant, stored)
    return settings


@pytest.fixture(scope="module")
def stored() -> list[Event]:
    return events()


def test_train_writes_a_bundle_that_serves(tmp_path: Path, stored: list[Event]) -> None:
    settings = data_dir(tmp_path, stored)
    with opened_store(settings) as store:
        result = train(settings, store)

    registry = ModelRegistry.of(settings)
    assert result.activated and registry.active() == result.version
    assert result.path == registry.path(result.version)
    bundle = registry.load()
    assert bundle.version == result.version
    assert set(bundle.models) == {"popular", "itemknn", "ials", "taste"}
    for name in ("itemknn", "ials"):
        ids, scores = bundle.models[name].recommend(["u1", "u2"], k=1)
        # planted groups: odd users take odd items, even users even ones
        assert [int(i[1:]) % 2 for i in ids[:, 0]] == [1, 0], name
        assert np.isfinite(scores).all()
    # serving uses all the data: every user and item is in the model
    assert len(bundle.models["itemknn"].user_ids_) == 150
    assert len(bundle.models["itemknn"].item_ids_) == 50


def test_the_manifest_describes_data_models_and_metrics(
    tmp_path: Path, stored: list[Event]
) -> None:
    settings = data_dir(tmp_path, stored)
    with opened_store(settings) as store:
        result = train(settings, store, models=["popular", "itemknn"])

    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["version"] == result.version and manifest["penchant"] == __version__
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    newest = max(e.timestamp for e in stored)
    assert datetime.fromisoformat(manifest["data"]["events_watermark"]) == newest
    assert manifest["data"]["interactions"] == len(stored)
    assert (manifest["data"]["users"], manifest["data"]["items"]) == (150, 50)
    assert list(manifest["models"]) == ["popular", "itemknn"]
    knn = manifest["models"]["itemknn"]
    assert knn["class"] == "ItemKNN" and knn["params"] == {}
    assert knn["fit_seconds"] >= 0 and manifest["training_seconds"] >= knn["fit_seconds"]
    metrics = knn["metrics"]
    assert 0 < metrics["ndcg@10"] <= 1 and 0 < metrics["recall@20"] <= 1
    assert metrics["test_users"] > 50
    # the planted groups are learnable: item-kNN beats popularity offline
    assert metrics["ndcg@10"] > manifest["models"]["popular"]["metrics"]["ndcg@10"]


def test_params_come_from_settings_and_the_argument_wins(
    tmp_path: Path, stored: list[Event]
) -> None:
    settings = data_dir(
        tmp_path,
        stored,
        models=["popular", "itemknn"],
        params={"itemknn": {"k": 7, "shrinkage": 2.0}, "ials": {"factors": 8}},
    )
    with opened_store(settings) as store:
        result = train(settings, store, params={"itemknn": {"k": 5}})

    assert result.manifest["models"]["itemknn"]["params"] == {"k": 5, "shrinkage": 2.0}
    model = ModelRegistry.of(settings).load().models["itemknn"]
    assert (model.get_params()["k"], model.get_params()["shrinkage"]) == (5, 2.0)


@pytest.mark.parametrize(
    ("models", "params", "field", "message"),
    [
        (["popular", "nope"], None, "models", "unknown model 'nope'"),
        ([], None, "models", "name at least one model"),
        (["popular", "popular"], None, "models", "named twice"),
        (["popular"], {"nope": {"k": 1}}, "params", "unknown model 'nope'"),
        (["popular"], {"itemknn": {"k": 1}}, "params", "not among those trained"),
        (["itemknn"], {"itemknn": {"neighbours": 1}}, None, "model itemknn"),
    ],
)
def test_bad_models_or_params_fail_before_anything_is_written(
    tmp_path: Path,
    stored: list[Event],
    models: list[str],
    params: dict[str, dict[str, object]] | None,
    field: str | None,
    message: str,
) -> None:
    settings = data_dir(tmp_path, stored[:50])
    with opened_store(settings) as store, pytest.raises(InvalidInput, match=message) as err:
        train(settings, store, models=models, params=params)
    assert err.value.field == field
    assert ModelRegistry.of(settings).versions() == []


def test_an_empty_store_is_a_clear_error(tmp_path: Path) -> None:
    settings = data_dir(tmp_path, [])
    with opened_store(settings) as store, pytest.raises(InvalidInput, match="no events") as err:
        train(settings, store)
    assert err.value.field == "events"
    with opened_store(settings) as store:  # events, but none a model can learn from
        store.events.append("default", [Event(user_id="u", item_id="i", type="impression")])
        with pytest.raises(InvalidInput, match="no usable interactions"):
            train(settings, store)
    assert ModelRegistry.of(settings).versions() == []


def test_too_little_data_trains_without_offline_metrics(tmp_path: Path) -> None:
    same_time = [
        Event(user_id=u, item_id=i, type="click", timestamp=T0)
        for u, i in [("a", "x"), ("a", "y"), ("b", "y"), ("b", "z")]
    ]
    settings = data_dir(tmp_path, same_time)
    with opened_store(settings) as store:
        result = train(settings, store, models=["popular", "itemknn"])

    for entry in result.manifest["models"].values():
        assert entry["metrics"] == {} and entry["note"].startswith("not evaluated")
    ids, _ = ModelRegistry.of(settings).load().models["itemknn"].recommend(["a"], k=1)
    assert ids[0][0] == "z"  # a's items co-occur with z through b


def test_no_activate_keeps_serving_the_old_version_and_old_ones_are_pruned(
    tmp_path: Path, stored: list[Event]
) -> None:
    settings = data_dir(tmp_path, stored[:400], models=["popular"], keep_versions=2)
    with opened_store(settings) as store:
        first = train(settings, store)
        second = train(settings, store, activate=False)
        third = train(settings, store, activate=False)

    registry = ModelRegistry.of(settings)
    assert not second.activated and registry.active() == first.version
    assert third.pruned == [second.version]
    assert [v.version for v in registry.versions()] == [first.version, third.version]


def test_settings_can_turn_auto_activation_off(tmp_path: Path, stored: list[Event]) -> None:
    settings = data_dir(tmp_path, stored[:400], models=["popular"], auto_activate=False)
    with opened_store(settings) as store:
        result = train(settings, store)
        assert not result.activated and ModelRegistry.of(settings).active() is None
        assert train(settings, store, activate=True).activated


def test_a_blend_blends_the_other_models(tmp_path: Path, stored: list[Event]) -> None:
    settings = data_dir(tmp_path, stored, models=["popular", "itemknn", "blend"])
    with opened_store(settings) as store:
        train(settings, store, params={"blend": {"weights": [0.0, 1.0]}})
    blend = ModelRegistry.of(settings).load().models["blend"]
    ids, _ = blend.recommend(["u1"], k=1)
    assert int(ids[0][0][1:]) % 2 == 1
    with opened_store(settings) as store, pytest.raises(InvalidInput, match="blend needs"):
        train(settings, store, models=["blend"])


def test_one_training_at_a_time_per_tenant(tmp_path: Path, stored: list[Event]) -> None:
    settings = data_dir(tmp_path, stored[:100], models=["popular"])
    registry = ModelRegistry.of(settings)
    with opened_store(settings) as store:
        with registry.training(), pytest.raises(Conflict, match="another training"):
            train(settings, store)
        assert train(settings, store).activated  # the lock is released


def test_the_hybrid_learns_from_the_lists_the_store_logged(tmp_path: Path) -> None:
    """A simulated world's history (served lists, then reactions carrying their request
    ids): training reads the impressions back from the store and the ranker learns from them."""
    pytest.importorskip("lightgbm", reason="the hybrid ranker needs penchant[rank]")
    from penchant.ingest.world import World, WorldConfig

    world = World.generate(WorldConfig(n_users=200, n_items=300, n_categories=6, days=10, seed=0))
    settings = data_dir(tmp_path, [])
    hybrid = {
        "members": ["ials", "itemknn", "popular"],
        "candidates": 15,
        "trees": 30,
        "threads": 1,
    }
    with opened_store(settings) as store:
        for table in world.events():
            store.events.append_table(settings.tenant, table)
        result = train(settings, store, models=["hybrid", "popular"], params={"hybrid": hybrid})

    entries = result.manifest["models"]
    assert entries["hybrid"]["trained_on"] == "impressions and held-out"
    assert "trained_on" not in entries["popular"]
    model = ModelRegistry.of(settings).load().models["hybrid"]
    assert getattr(model, "trained_on_", None) == "impressions and held-out"
    ids, _ = model.recommend(["u000001"], k=5)
    assert len(set(ids[0].tolist())) == 5
