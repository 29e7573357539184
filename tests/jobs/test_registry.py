"""The model registry: bundles, the ACTIVE pointer, activate, rollback, load and prune."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from penchant.errors import InvalidInput, NotFound
from penchant.jobs.registry import ACTIVE, ModelRegistry, new_version
from penchant.models import ItemKNN, Popular
from penchant.settings import load_settings
from penchant.store.artifacts import LocalArtifactStore
from penchant.testing.synthetic import planted_blocks

T0 = datetime(2026, 11, 27, 20, 15, 30, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", "default")


def publish(registry: ModelRegistry, tmp_path: Path, n: int, *, activate: bool = False) -> str:
    """A small two-model bundle published as the `n`-th version (one second apart)."""
    version = new_version(T0 + timedelta(seconds=n))
    staging = tmp_path / f"staging-{n}"
    data = planted_blocks(n_users=30, n_items=20, rng=n)
    models = {"popular": Popular().fit(data), "itemknn": ItemKNN(k=5).fit(data)}
    for name, model in models.items():
        model.save(staging / name)
    manifest = {
        "version": version,
        "created_at": (T0 + timedelta(seconds=n)).isoformat(),
        "models": {name: {"class": type(m).__name__, "metrics": {}} for name, m in models.items()},
    }
    (staging / "manifest.json").write_text(json.dumps(manifest))
    registry.publish(staging, version, activate=activate)
    return version


def test_a_published_version_is_listed_and_loads_once_active(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    assert registry.versions() == [] and registry.active() is None and registry.marker() is None
    version = publish(registry, tmp_path, 1)

    [info] = registry.versions()
    assert (info.version, info.active) == (version, False)
    assert info.manifest["version"] == version and info.created_at.startswith("2026-11-27T20")
    with pytest.raises(NotFound, match="no active model version"):
        registry.load()

    registry.activate(version)
    bundle = registry.load()
    assert bundle.version == version == registry.active()
    assert bundle.path == tmp_path / "models" / "default" / "recommender" / version
    assert set(bundle.models) == {"popular", "itemknn"}
    ids, _ = bundle.models["itemknn"].recommend(["u0"], k=1)
    assert int(ids[0][0][1:]) % 2 == 0  # u0's group: the even items
    assert registry.versions()[0].active


def test_version_names_sort_by_time_and_pass_the_artifact_name_check(tmp_path: Path) -> None:
    names = [new_version(T0 + timedelta(seconds=s)) for s in (0, 1, 60, 3600)]
    assert names == sorted(names)
    assert names[0].startswith("20261127T201530Z-") and len(names[0]) == 23
    store = LocalArtifactStore(tmp_path)
    (tmp_path / "src").mkdir()
    assert store.put("t", "recommender", names[0], tmp_path / "src").is_dir()


def test_activate_and_rollback_walk_the_history(registry: ModelRegistry, tmp_path: Path) -> None:
    v1, v2, v3 = (publish(registry, tmp_path, n, activate=True) for n in (1, 2, 3))
    assert registry.active() == v3 and registry.history() == [v1, v2]
    registry.activate(v3)  # already active: no change to the history
    assert registry.history() == [v1, v2]

    assert registry.rollback() == v2 and registry.active() == v2
    assert registry.rollback() == v1 and registry.history() == []
    with pytest.raises(InvalidInput, match="no earlier active model version"):
        registry.rollback()
    assert registry.active() == v1


def test_rollback_skips_versions_deleted_since(registry: ModelRegistry, tmp_path: Path) -> None:
    v1, v2, _ = (publish(registry, tmp_path, n, activate=True) for n in (1, 2, 3))
    LocalArtifactStore(registry.root).delete("default", "recommender", v2)
    assert registry.rollback() == v1


def test_unknown_and_invalid_versions(registry: ModelRegistry, tmp_path: Path) -> None:
    publish(registry, tmp_path, 1)
    with pytest.raises(NotFound, match="no model version '20200101T000000Z-abcdef'") as err:
        registry.activate("20200101T000000Z-abcdef")
    assert err.value.field == "version"
    with pytest.raises(NotFound):
        registry.load("20200101T000000Z-abcdef")
    with pytest.raises(InvalidInput):
        registry.activate("../escape")
    with pytest.raises(InvalidInput):
        ModelRegistry(tmp_path, "../other")
    assert registry.active() is None


def test_active_is_replaced_whole_and_readable_by_others(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    v1, v2 = (publish(registry, tmp_path, n) for n in (1, 2))
    registry.activate(v1)
    active_file = registry.directory / ACTIVE
    first = os.stat(active_file)
    marker = registry.marker()
    registry.activate(v2)

    second = os.stat(active_file)
    assert second.st_ino != first.st_ino  # a new file renamed over the old one
    assert registry.marker() != marker
    assert stat.S_IMODE(second.st_mode) == 0o644
    document = json.loads(active_file.read_text())
    assert document["version"] == v2 and document["history"] == [v1]
    assert datetime.fromisoformat(document["activated_at"]).tzinfo is not None
    assert not [p for p in registry.directory.iterdir() if p.name.startswith(".ACTIVE")]


def test_a_failed_write_leaves_the_active_version_alone(
    registry: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, v2 = (publish(registry, tmp_path, n) for n in (1, 2))
    registry.activate(v1)

    def no_room(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_room)
    with pytest.raises(OSError):
        registry.activate(v2)
    monkeypatch.undo()
    assert registry.active() == v1
    assert not [p for p in registry.directory.iterdir() if p.name.startswith(".ACTIVE")]


def test_a_corrupt_active_file_or_manifest_is_a_clear_error(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    v1, v2 = (publish(registry, tmp_path, n) for n in (1, 2))
    (registry.directory / ACTIVE).write_text("{not json")
    with pytest.raises(InvalidInput, match="ACTIVE: unreadable") as err:
        registry.active()
    assert err.value.field == "active"
    (registry.directory / ACTIVE).write_text('{"version": 3}')
    with pytest.raises(InvalidInput, match="not a valid ACTIVE file"):
        registry.load()
    registry.activate(v1)  # repairs it

    (registry.path(v2) / "manifest.json").write_text("[]")
    with pytest.raises(InvalidInput, match="not a JSON object") as err:
        registry.load(v2)
    assert err.value.field == "manifest"
    (registry.path(v2) / "manifest.json").unlink()
    listed = {v.version: v for v in registry.versions()}
    assert "missing" in listed[v2].manifest["error"] and listed[v2].created_at == ""
    assert registry.load().version == v1


def test_publish_needs_a_manifest(registry: ModelRegistry, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"no manifest\.json"):
        registry.publish(tmp_path / "empty", new_version(), activate=True)
    assert registry.versions() == []


def test_prune_keeps_the_active_version_and_its_predecessor(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    v1, v2, v3, v4, v5 = (publish(registry, tmp_path, n) for n in range(1, 6))
    registry.activate(v2)
    registry.activate(v1)  # the oldest is served; v2 is the rollback target

    assert registry.prune(2) == [v3, v4, v5]
    assert [v.version for v in registry.versions()] == [v1, v2]
    assert registry.prune(1) == []  # both are protected
    assert registry.rollback() == v2
    with pytest.raises(InvalidInput):
        registry.prune(0)


def test_prune_deletes_the_oldest_beyond_keep(registry: ModelRegistry, tmp_path: Path) -> None:
    versions = [publish(registry, tmp_path, n, activate=True) for n in range(1, 5)]
    assert registry.prune(3) == versions[:1]
    assert registry.prune(3) == []


def test_prune_removes_staging_left_by_a_killed_training(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    publish(registry, tmp_path, 1)
    old = registry.directory / ".staging-old"
    (old / "ials").mkdir(parents=True)
    os.utime(old, (time.time() - 7 * 3600,) * 2)
    fresh = registry.directory / ".staging-fresh"  # perhaps a training running now
    fresh.mkdir()
    registry.prune(10)
    assert not old.exists() and fresh.exists()
    with registry.staging() as folder:
        assert folder.parent == registry.directory and folder.is_dir()
    assert not folder.exists()


def test_versions_within_one_second_list_in_creation_order(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    names = ["20261127T201530Z-ffffff", "20261127T201530Z-000000"]  # created in this order
    for n, name in enumerate(names):
        staging = tmp_path / name
        staging.mkdir()
        created = (T0 + timedelta(milliseconds=n)).isoformat()
        (staging / "manifest.json").write_text(json.dumps({"created_at": created, "models": {}}))
        registry.publish(staging, name, activate=False)
    assert [v.version for v in registry.versions()] == names


def test_of_settings_uses_the_data_dir_and_tenant(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data").model_copy(update={"tenant": "shop"})
    registry = ModelRegistry.of(settings)
    assert registry.directory == tmp_path / "data" / "models" / "shop" / "recommender"
