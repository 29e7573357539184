"""`penchant train` and `penchant models list|activate|rollback`: the model versions."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from penchant.cli.common import DataDir, Json, Tenant, err, out, print_json, settings_for
from penchant.errors import InvalidInput
from penchant.jobs.registry import ModelRegistry, VersionInfo
from penchant.jobs.store import opened_store
from penchant.jobs.train import METRICS, TrainResult
from penchant.jobs.train import train as train_job
from penchant.models import MODELS
from penchant.settings import Settings

app = typer.Typer(help="List, activate and roll back trained model versions.", no_args_is_help=True)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


def _settings(data_dir: DataDir, tenant: str | None) -> Settings:
    settings = settings_for(data_dir)
    return settings.model_copy(update={"tenant": tenant}) if tenant else settings


def parse_params(values: list[str]) -> dict[str, dict[str, Any]]:
    """`MODEL.NAME=VALUE` values as hyperparameters per model; values are read as JSON.

    `ials.factors=32` gives 32, `ials.alpha=0.5` gives 0.5, `itemknn.neighbourhood=target`
    the string `target`.

    Raises:
        InvalidInput: a value not of the form MODEL.NAME=VALUE.
    """
    params: dict[str, dict[str, Any]] = {}
    for value in values:
        key, sep, text = value.partition("=")
        model, dot, name = key.strip().partition(".")
        if not sep or not dot or not model or not name.strip() or not text.strip():
            raise InvalidInput(
                f"--param {value!r}: expected MODEL.NAME=VALUE, e.g. ials.factors=32",
                field="param",
            )
        try:
            parsed: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = text.strip()
        params.setdefault(model, {})[name.strip()] = parsed
    return params


def train(
    data_dir: DataDir = None,
    tenant: Tenant = None,
    models: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated, from {', '.join(MODELS)} (default: training.models).",
            show_default=False,
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="A hyperparameter as MODEL.NAME=VALUE, e.g. ials.factors=32; repeatable.",
            show_default=False,
        ),
    ] = None,
    activate: Annotated[
        bool | None,
        typer.Option(
            "--activate/--no-activate",
            help="Serve the new version (default: training.auto_activate).",
            show_default=False,
        ),
    ] = None,
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Fit the models on every stored event into a new model version, and serve it.

    Each model is also judged on the newest 20% of the interactions (fitted on the rest)
    and its NDCG@10 and Recall@20 are kept in the version's manifest.
    """
    settings = _settings(data_dir, tenant)
    names = None if models is None else [m.strip() for m in models.split(",") if m.strip()]
    params = parse_params(param or [])
    console = None if quiet or json else err()
    with opened_store(settings) as store:
        result = train_job(
            settings, store, models=names, params=params, activate=activate, console=console
        )
    if json:
        print_json(result.to_json())
        return
    _print_result(result)


def _print_result(result: TrainResult) -> None:
    manifest = result.manifest
    data = manifest["data"]
    console = out()
    state = "active" if result.activated else "not active"
    console.print(f"Version {result.version} ({state}) in {manifest['training_seconds']:.1f} s")
    console.print(
        f"Trained on {data['interactions']:,} interactions of {data['users']:,} users and "
        f"{data['items']:,} items, events up to {data['events_watermark']}"
    )
    table = Table(box=None)
    for column in ("model", "fit s", *METRICS):
        table.add_column(column, justify="left" if column == "model" else "right")
    notes = []
    for name, entry in manifest["models"].items():
        metrics = entry["metrics"]
        cells = [f"{metrics[m]:.4f}" if m in metrics else "-" for m in METRICS]
        table.add_row(name, f"{entry['fit_seconds']:.2f}", *cells)
        if entry.get("note"):
            notes.append(f"{name}: {entry['note']}")
    console.print(table)
    for note in notes:
        console.print(note)
    if result.pruned:
        console.print(f"Deleted old versions: {', '.join(result.pruned)}")


@app.command("list")
def list_versions(data_dir: DataDir = None, tenant: Tenant = None, json: Json = False) -> None:
    """List the stored model versions, oldest first; * marks the one being served."""
    registry = ModelRegistry.of(_settings(data_dir, tenant))
    versions = registry.versions()
    if json:
        print_json([_version_json(v) for v in versions])
        return
    console = out()
    if not versions:
        console.print(f"No model versions for tenant {registry.tenant}; run 'penchant train'.")
        return
    table = Table(box=None)
    table.add_column("")
    table.add_column("version", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("models, ndcg@10")
    for info in versions:
        models = info.manifest.get("models")
        entries = models if isinstance(models, dict) else {}
        described = []
        for name, entry in entries.items():
            metrics = entry.get("metrics") if isinstance(entry, dict) else None
            score = (metrics or {}).get("ndcg@10")
            described.append(f"{name} {score:.4f}" if isinstance(score, float) else name)
        table.add_row(
            "*" if info.active else "",
            info.version,
            info.created_at[:16].replace("T", " ") or "?",
            ", ".join(described) or str(info.manifest.get("error", "")),
        )
    console.print(table)


def _version_json(info: VersionInfo) -> dict[str, Any]:
    models = info.manifest.get("models")
    return {
        "version": info.version,
        "created_at": info.created_at,
        "active": info.active,
        "models": {
            name: (entry.get("metrics") or {}) if isinstance(entry, dict) else {}
            for name, entry in (models.items() if isinstance(models, dict) else [])
        },
        "data": info.manifest.get("data"),
        **({"error": info.manifest["error"]} if "error" in info.manifest else {}),
    }


@app.command("activate")
def activate(
    version: Annotated[str, typer.Argument(help="The version to serve.", show_default=False)],
    data_dir: DataDir = None,
    tenant: Tenant = None,
    json: Json = False,
) -> None:
    """Serve a stored model version (the service picks it up within serving.refresh_s)."""
    registry = ModelRegistry.of(_settings(data_dir, tenant))
    previous = registry.active()
    registry.activate(version)
    if json:
        print_json({"active": version, "previous": previous})
        return
    out().print(f"Active version: {version}" + (f" (was {previous})" if previous else ""))


@app.command("rollback")
def rollback(data_dir: DataDir = None, tenant: Tenant = None, json: Json = False) -> None:
    """Serve the version that was active before the current one again."""
    registry = ModelRegistry.of(_settings(data_dir, tenant))
    previous = registry.active()
    version = registry.rollback()
    if json:
        print_json({"active": version, "previous": previous})
        return
    out().print(f"Rolled back to version {version} (was {previous})")
