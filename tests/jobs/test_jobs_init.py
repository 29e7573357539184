"""The init job: data directory, commented config, migrated store, admin key."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

from pydantic import BaseModel

from penchant.jobs.init import CONFIG_TEMPLATE, init_data_dir
from penchant.privacy.keys import authenticate
from penchant.settings import Settings, load_settings
from penchant.store import open_store


def test_init_makes_config_store_and_admin_key(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data")
    result = init_data_dir(settings)

    assert result.config_created and result.key_created and result.key_valid
    assert result.config_file.read_text() == CONFIG_TEMPLATE
    assert stat.S_IMODE(os.stat(result.key_file).st_mode) == 0o600
    key = result.key_file.read_text().strip()
    assert key == result.key
    store = open_store(settings.store_url)
    try:
        record = authenticate(store.keys, key)
    finally:
        store.close()
    assert record.scopes == ("admin",) and record.tenant == "default"
    assert record.name == "local admin"


def test_init_twice_changes_nothing(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data")
    first = init_data_dir(settings)
    (tmp_path / "data" / "penchant.toml").write_text('tenant = "shop"\n')
    again = init_data_dir(load_settings(tmp_path / "data"))

    assert not again.config_created and not again.key_created and again.key_valid
    assert again.key is None
    assert first.key_file.read_text().strip() == first.key
    assert (tmp_path / "data" / "penchant.toml").read_text() == 'tenant = "shop"\n'


def test_a_key_file_from_another_store_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "admin.key").write_text("pk_000000000000_not-a-real-key\n")
    assert init_data_dir(load_settings(data)).key_valid is False


def _commented_settings() -> dict[str, set[str]]:
    """Setting names in the template, by section ("" for the top level)."""
    found: dict[str, set[str]] = {"": set()}
    section = ""
    for line in CONFIG_TEMPLATE.splitlines():
        if header := re.fullmatch(r"\[(\w+)\]", line):
            section = header.group(1)
            found[section] = set()
        elif setting := re.fullmatch(r"# (\w+) = .*", line):
            found[section].add(setting.group(1))
    return found


def test_the_config_template_lists_every_setting() -> None:
    listed = _commented_settings()
    for name, field in Settings.model_fields.items():
        if name == "data_dir":  # --data-dir or PENCHANT_DATA_DIR, never the file
            continue
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            assert listed.get(name) == set(kind.model_fields), name
        else:
            assert name in listed[""], name


def test_the_template_shows_the_defaults(tmp_path: Path) -> None:
    uncommented = re.sub(r"(?m)^# (\w+ = .*)$", r"\1", CONFIG_TEMPLATE)
    values = tomllib.loads(uncommented)
    values["store"].pop("url")  # an example: the default depends on the data directory
    values["privacy"].pop("secret_file")  # likewise
    for example in ("generation_url", "generation_api_key"):  # unset by default
        values["content"].pop(example)
    values["experiments"].pop("holdout_surface")  # likewise
    (tmp_path / "penchant.toml").write_text(uncommented)
    defaults = load_settings(tmp_path / "empty").model_dump(exclude={"data_dir"})
    for section, settings in values.items():
        if isinstance(settings, dict):
            for key, value in settings.items():
                assert defaults[section][key] == value, f"{section}.{key}"
        else:
            assert defaults[section] == settings, section
