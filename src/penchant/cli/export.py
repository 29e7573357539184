"""`penchant privacy export|import`: a person's data, out of one instance and into another."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from penchant.cli.common import DataDir, Json, Tenant, err, out, print_json, settings_for
from penchant.jobs.export import export_user
from penchant.jobs.export_import import import_export, read_export
from penchant.jobs.store import opened_store, settings_pseudonyms
from penchant.store.state import open_state


def export(
    user_id: Annotated[str, typer.Argument(help="The person's user id.", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the export here (default: standard output).",
            show_default=False,
        ),
    ] = None,
    tenant: Tenant = None,
    data_dir: DataDir = None,
) -> None:
    """Export everything stored about a person and what was inferred, as JSON.

    The same document as GET /v1/users/{id}/export; `penchant privacy import` stores it in
    another instance. The export is recorded in the audit log (without its content).
    """
    settings = settings_for(data_dir)
    if settings.state.url.startswith("memory:"):
        err().print(
            "note: online state is in-process (memory://): a running service keeps its own, "
            "so export through its API (GET /v1/users/{id}/export) to include it"
        )
    state = open_state(settings.state.url)
    tenant = tenant or settings.tenant
    stored = settings_pseudonyms(settings).user(tenant, user_id)
    with opened_store(settings) as store:
        data = export_user(settings, store, state, tenant, stored, known_as=user_id)
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
    if output is None:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
        return
    output.write_bytes(text)
    err().print(f"{len(data['events']):,} events and the rest written to {output}")


def import_(
    file: Annotated[
        Path, typer.Argument(help="An export file (penchant-export/1).", show_default=False)
    ],
    tenant: Tenant = None,
    data_dir: DataDir = None,
    json: Json = False,
) -> None:
    """Store a person's export: their events, profile, consent history and controls.

    Importing the same file again stores nothing new. What was inferred (interests, model
    rows, online state) is not imported: this instance infers its own from the events.
    """
    settings = settings_for(data_dir)
    data = read_export(file)
    state = open_state(settings.state.url)  # serving reads consent and controls from there
    with opened_store(settings) as store:
        report = import_export(settings, store, data, tenant=tenant, state=state)
    if json:
        print_json(dataclasses.asdict(report))
        return
    out().print(
        f"events: {report.stored:,} stored, {report.duplicates:,} already there, "
        f"of {report.events:,}; profile: {'written' if report.profile else 'none'}; "
        f"consent entries: {report.consents}; controls: {report.controls}"
    )
