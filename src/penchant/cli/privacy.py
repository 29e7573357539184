"""`penchant privacy ...`: erasure, retention and differentially private reports."""

from __future__ import annotations

import typer

from penchant.cli import dp, erase, export, retention

app = typer.Typer(
    help="Serve people's rights: erase, export, retention, private reports.",
    no_args_is_help=True,
)
app.command("erase")(erase.erase)
app.command("erasure")(erase.erasure)
app.command("rebuild")(erase.rebuild)
app.command("reinstate")(erase.reinstate)
app.command("export")(export.export)
app.command("import")(export.import_)
app.command("retention")(retention.retention)
app.command("report")(dp.report)
