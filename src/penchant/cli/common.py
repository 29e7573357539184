"""What every command shares: the common options, settings, the store and output helpers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from penchant.errors import InvalidInput
from penchant.settings import Settings, load_settings

M = TypeVar("M", bound=BaseModel)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: $PENCHANT_DATA_DIR or ./penchant-data).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Tenant = Annotated[
    str | None,
    typer.Option(
        "--tenant", help="Tenant (default: tenant from penchant.toml).", show_default=False
    ),
]


def settings_for(data_dir: Path | None) -> Settings:
    """The settings of a data directory (defaults < penchant.toml < PENCHANT_* environment)."""
    return load_settings(data_dir)


def out() -> Console:
    """A console on standard output, for results."""
    return Console(highlight=False, soft_wrap=True)


def err() -> Console:
    """A console on standard error, for progress bars and notes."""
    return Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    """Print a value as indented JSON on standard output."""
    sys.stdout.write(orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")


def pairs(values: list[str], option: str) -> dict[str, str]:
    """`NAME=VALUE` option values as a dict.

    Raises:
        InvalidInput: a value has no `=` or an empty side.
    """
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, target = value.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise InvalidInput(f"{option} {value!r}: expected COLUMN=FIELD")
        parsed[name.strip()] = target.strip()
    return parsed


def read_json(path: Path) -> Any:
    """A JSON file's value.

    Raises:
        InvalidInput: the file is not valid JSON (its name is the field).
    """
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name} is not valid JSON: {exc}", field=str(path)) from exc


def parse_model(model: type[M], data: Any, where: str) -> M:
    """Validate `data` as `model`.

    Raises:
        InvalidInput: the first invalid field, named after `where` (such as the file).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{where}: {field}: {first['msg']}", field=field) from exc
