"""`penchant import events|items|users FILE`: bulk import with formats and column mapping."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from penchant.cli.common import (
    DataDir,
    Json,
    Tenant,
    err,
    out,
    pairs,
    print_json,
    settings_for,
)
from penchant.errors import InvalidInput
from penchant.ingest.catalog import CatalogKind, CatalogReport
from penchant.ingest.columns import TimestampUnit
from penchant.ingest.formats import PRESETS
from penchant.jobs.imports import import_catalog_file, import_events
from penchant.jobs.store import opened_store

app = typer.Typer(
    help="Import events, items or users from CSV, TSV, JSONL or Parquet files.",
    no_args_is_help=True,
)

File = Annotated[Path, typer.Argument(help="The file to import.", show_default=False)]
Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help=f"One of {', '.join(PRESETS)} (default: from the file name).",
        show_default=False,
    ),
]
Map = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="COLUMN=FIELD: read FIELD from source column COLUMN (repeatable).",
        show_default=False,
    ),
]
Delimiter = Annotated[
    str | None,
    typer.Option(help="Field separator: one character, or tab, comma, space, semicolon, pipe."),
]
Encoding = Annotated[
    str | None,
    typer.Option(
        help="Text encoding of a CSV file, e.g. latin-1 (default: utf-8).", show_default=False
    ),
]
Rejects = Annotated[
    Path | None,
    typer.Option(
        "--rejects",
        help="Where rejected rows go (JSONL) (default: <data dir>/rejects/<file>.rejects.jsonl).",
        show_default=False,
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


_FORMATS = "\n\n".join(f"{name}: {preset.description}" for name, preset in PRESETS.items())


@app.command("events", epilog=f"Formats:\n\n{_FORMATS}")
def events(
    file: File,
    format: Format = None,
    map: Map = None,
    type: Annotated[
        str | None, typer.Option("--type", help="One event type for every row, e.g. rating.")
    ] = None,
    timestamp_unit: Annotated[
        str | None,
        typer.Option(
            "--timestamp-unit",
            help="s, ms or us (unix time), iso (ISO-8601), or auto: numbers are seconds, "
            "text is ISO-8601 (default: auto, or the format's).",
            show_default=False,
        ),
    ] = None,
    delimiter: Delimiter = None,
    encoding: Encoding = None,
    rejects: Rejects = None,
    with_catalog: Annotated[
        bool | None,
        typer.Option(
            "--with-catalog/--no-catalog",
            help="Import the item and user files a dataset format keeps beside the event file "
            "(default: when they are there).",
            show_default=False,
        ),
    ] = None,
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
    quiet: Quiet = False,
) -> None:
    """Import an event file; bad rows go to a rejects file and the import goes on.

    Importing the same file again stores nothing new; an import that was stopped resumes.
    """
    units = get_args(TimestampUnit)
    if timestamp_unit is not None and timestamp_unit not in units:
        raise InvalidInput(
            f"--timestamp-unit {timestamp_unit!r}: expected one of {', '.join(units)}"
        )
    settings = settings_for(data_dir)
    with opened_store(settings) as store:
        report = import_events(
            settings,
            store,
            file,
            format=format,
            mapping=pairs(map or [], "--map"),
            event_type=type,
            timestamp_unit=timestamp_unit,  # type: ignore[arg-type]
            delimiter=delimiter,
            encoding=encoding,
            rejects=rejects,
            with_catalog=with_catalog,
            tenant=tenant,
            console=None if quiet or json else err(),
        )
    if json:
        print_json(dataclasses.asdict(report))
        return
    console = out()
    for kind, part in report.catalog.items():
        _print_catalog(kind, part)
    console.print(
        f"events: {report.stored:,} stored, {report.duplicates:,} already there, "
        f"{report.rejected:,} rejected, of {report.rows_read:,} rows "
        f"in {report.seconds:.1f} s ({report.events_per_second:,.0f} rows/s)"
    )
    if report.skipped_chunks:
        console.print(f"{report.skipped_chunks} of {report.chunks} chunks were imported before")
    if report.rejects_path:
        console.print(f"rejected rows and reasons: {report.rejects_path}")


def _catalog_command(kind: CatalogKind) -> Any:
    def command(
        file: File,
        format: Format = None,
        map: Map = None,
        delimiter: Delimiter = None,
        encoding: Encoding = None,
        rejects: Rejects = None,
        tenant: Tenant = None,
        data_dir: DataDir = None,
        json: Json = False,
    ) -> None:
        settings = settings_for(data_dir)
        with opened_store(settings) as store:
            report = import_catalog_file(
                settings,
                store,
                file,
                kind,
                format=format,
                mapping=pairs(map or [], "--map"),
                delimiter=delimiter,
                encoding=encoding,
                rejects=rejects,
                tenant=tenant,
            )
        if json:
            print_json(report.as_dict())
        else:
            _print_catalog(kind, report.as_dict())

    record = "Item" if kind == "items" else "User"
    command.__doc__ = (
        f"Import {kind}: columns named like {record} fields fill them (--map renames), "
        "other columns become attributes; invalid rows go to a rejects file."
    )
    return command


def _print_catalog(kind: str, report: dict[str, Any] | CatalogReport) -> None:
    part = report.as_dict() if isinstance(report, CatalogReport) else report
    console = out()
    console.print(
        f"{kind}: {part['stored']:,} stored, {part['rejected']:,} rejected, "
        f"from {Path(part['path']).name}"
    )
    if part.get("rejects_path"):
        console.print(f"rejected {kind} and reasons: {part['rejects_path']}")


app.command("items")(_catalog_command("items"))
app.command("users")(_catalog_command("users"))
