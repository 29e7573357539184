"""Local artifact store: versions appear whole, names cannot escape the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from penchant.errors import InvalidInput, NotFound
from penchant.store.artifacts import LocalArtifactStore


def test_put_list_path_delete(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "meta.json").write_text("{}")
    store = LocalArtifactStore(tmp_path / "models")
    store.put("default", "als", "v2", src)
    store.put("default", "als", "v1", src)
    assert store.versions("default", "als") == ["v1", "v2"]
    assert (store.path("default", "als", "v1") / "meta.json").read_text() == "{}"
    assert store.versions("other", "als") == []
    with pytest.raises(InvalidInput):
        store.put("default", "als", "v1", src)
    store.delete("default", "als", "v1")
    with pytest.raises(NotFound):
        store.path("default", "als", "v1")


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", ".hidden"])
def test_names_that_could_escape_are_refused(tmp_path: Path, bad: str) -> None:
    store = LocalArtifactStore(tmp_path)
    with pytest.raises(InvalidInput):
        store.versions("default", bad)
