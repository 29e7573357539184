"""Import jobs: event, item and user files into a tenant's store, with presets and progress."""

from __future__ import annotations

import codecs
import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from penchant.errors import InvalidInput
from penchant.ingest.bulk import EventSpec, ImportReport, OnProgress
from penchant.ingest.bulk import import_events as bulk_import_events
from penchant.ingest.catalog import CatalogKind, CatalogReport, file_rows, import_catalog
from penchant.ingest.columns import TimestampUnit
from penchant.ingest.formats import Preset, get_preset, guess_format
from penchant.ingest.rejects import Rejects
from penchant.ingest.source import SourceFormat
from penchant.jobs.store import settings_pseudonyms
from penchant.schema import EventVocabulary
from penchant.settings import Settings
from penchant.store import Store

#: Names `--delimiter` accepts besides a single character.
DELIMITERS = {"comma": ",", "tab": "\t", "\\t": "\t", "space": " ", "semicolon": ";", "pipe": "|"}


def rejects_file(settings: Settings, source: Path) -> Path:
    """The default rejects file of a source: `<data dir>/rejects/<name>.rejects.jsonl`."""
    return settings.data_dir / "rejects" / f"{source.name}.rejects.jsonl"


def import_events(
    settings: Settings,
    store: Store,
    path: Path,
    *,
    format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    event_type: str | None = None,
    timestamp_unit: TimestampUnit | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    rejects: Path | None = None,
    with_catalog: bool | None = None,
    tenant: str | None = None,
    console: Console | None = None,
) -> ImportReport:
    """Import an event file, and the catalog files its format keeps beside it.

    Args:
        settings: the deployment's settings (tenant, custom event types, data directory).
        store: the store to write to.
        path: the event file.
        format: a preset name (see `penchant.ingest.formats.PRESETS`); default from the
            file name (csv, tsv, jsonl, parquet).
        mapping: source column -> event field, over the preset's mapping.
        event_type: one type for every row, over the preset's.
        timestamp_unit: how to read timestamps, over the preset's.
        delimiter: the field separator of a text file, over the preset's.
        encoding: the text encoding of a CSV file, over the preset's (default UTF-8).
        rejects: the rejects file; default `rejects_file(settings, path)`.
        with_catalog: import the preset's companion item and user files: None imports them
            when they exist, True requires them, False skips them.
        tenant: the tenant; default `settings.tenant`.
        console: where to draw a progress bar, or None.

    Returns:
        The report of the events, with the companion catalog reports in `catalog`.

    Raises:
        InvalidInput: the file, format or options cannot be used.
    """
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    preset = get_preset(format or guess_format(path))
    tenant = tenant or settings.tenant
    spec = event_spec(preset, mapping or {}, event_type, timestamp_unit, delimiter, encoding)
    companions = _companions(preset, path, with_catalog)
    catalog: dict[str, dict[str, object]] = {}
    for kind, companion in companions:
        part = import_catalog_file(settings, store, companion, kind, preset=preset, tenant=tenant)
        catalog[kind] = part.as_dict()
    vocabulary = EventVocabulary(settings.events.custom_types)
    with _progress(console, path) as on_progress:
        report = bulk_import_events(
            store.events,
            tenant,
            path,
            spec,
            vocabulary=vocabulary,
            rejects=rejects or rejects_file(settings, path),
            on_progress=on_progress,
            pseudonyms=settings_pseudonyms(settings),
        )
    return dataclasses.replace(report, catalog=catalog)


def import_catalog_file(
    settings: Settings,
    store: Store,
    path: Path,
    kind: CatalogKind,
    *,
    format: str | None = None,
    preset: Preset | None = None,
    mapping: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    rejects: Path | None = None,
    tenant: str | None = None,
) -> CatalogReport:
    """Import an item or user file (plain CSV/TSV/JSONL/Parquet, or a dataset preset's).

    Args:
        settings: the deployment's settings.
        store: the store to write to.
        path: the file.
        kind: `items` or `users`.
        format: a preset name; default from the file name.
        preset: the preset itself, instead of `format`.
        mapping: source column -> field of `schema.Item` or `schema.User`.
        delimiter: the field separator of a text file.
        encoding: the text encoding of a CSV file (default UTF-8).
        rejects: the rejects file; default `rejects_file(settings, path)`.
        tenant: the tenant; default `settings.tenant`.

    Returns:
        The counts of the import.

    Raises:
        InvalidInput: the file, format or options cannot be used.
    """
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    preset = preset or get_preset(format or guess_format(path))
    reader = preset.items if kind == "items" else preset.users
    if reader is None:
        if preset.events.source.kind == "sequence":
            raise InvalidInput(f"format {preset.name} has no {kind} files")
        source = _source(preset.events.source, delimiter, encoding)
        reader = file_rows(path, source, mapping or {}, kind)
    sink = Rejects(rejects or rejects_file(settings, path))
    return import_catalog(
        store.catalog,
        tenant or settings.tenant,
        kind,
        path,
        reader(path, sink),
        sink,
        pseudonyms=settings_pseudonyms(settings),
    )


def event_spec(
    preset: Preset,
    mapping: Mapping[str, str],
    event_type: str | None,
    timestamp_unit: TimestampUnit | None,
    delimiter: str | None,
    encoding: str | None,
) -> EventSpec:
    """The preset's event spec with the command line's overrides applied."""
    spec = preset.events
    return EventSpec(
        source=_source(spec.source, delimiter, encoding),
        mapping={**spec.mapping, **mapping},
        event_type=event_type or spec.event_type,
        timestamp_unit=timestamp_unit or spec.timestamp_unit,
    )


def _source(source: SourceFormat, delimiter: str | None, encoding: str | None) -> SourceFormat:
    if delimiter is not None:
        source = dataclasses.replace(source, delimiter=_delimiter(delimiter))
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise InvalidInput(f"--encoding {encoding!r}: unknown encoding") from exc
        source = dataclasses.replace(source, encoding=encoding)
    return source


def _delimiter(value: str) -> str:
    resolved = DELIMITERS.get(value.lower(), value)
    if len(resolved) != 1:
        raise InvalidInput(f"--delimiter {value!r}: one character, or {', '.join(DELIMITERS)}")
    return resolved


def _companions(preset: Preset, path: Path, wanted: bool | None) -> list[tuple[CatalogKind, Path]]:
    if wanted is False:
        return []
    found: list[tuple[CatalogKind, Path]] = []
    files: list[tuple[CatalogKind, str | None]] = [
        ("items", preset.items_file),
        ("users", preset.users_file),
    ]
    for kind, name in files:
        if name is None:
            continue
        companion = path.parent / name
        if companion.is_file():
            found.append((kind, companion))
        elif wanted:
            raise InvalidInput(f"--with-catalog: {companion} not found")
    if wanted and not found:
        raise InvalidInput(f"--with-catalog: format {preset.name} has no catalog files")
    return found


class _progress:
    """A rich progress bar over the bytes of a file, with rows per second; or nothing.

    The bar appears with the first stored chunk, so a file refused up front draws none.
    """

    def __init__(self, console: Console | None, path: Path) -> None:
        self._console = console
        self._path = path
        self._bar: Progress | None = None

    def __enter__(self) -> OnProgress | None:
        if self._console is None:
            return None
        console = self._console
        started = time.perf_counter()
        total = self._path.stat().st_size
        task = None

        def update(position: int, rows: int) -> None:
            nonlocal task
            if self._bar is None:
                self._bar = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(),
                    console=console,
                )
                task = self._bar.add_task(self._path.name, total=total, rate="")
                self._bar.start()
            assert task is not None
            rate = rows / max(time.perf_counter() - started, 1e-9)
            self._bar.update(task, completed=position, rate=f"{rate:,.0f} rows/s")

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
