"""The `penchant` application: its commands, and errors as one line instead of a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from penchant import __version__
from penchant.cli import (
    bandits,
    commands,
    data,
    evaluate,
    experiments,
    fairness,
    keys,
    models,
    ope,
    privacy,
    send,
    simulate,
    slots,
)
from penchant.errors import PenchantError


class _Group(TyperGroup):
    """The top-level group: every failure ends as one line on stderr and an exit code.

    Exit codes: 0 success, 1 a failed command (bad input, store error), 2 a usage error,
    130 interrupted. `PENCHANT_DEBUG=1` shows the traceback of unexpected errors.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except typer.TyperException as exc:  # typer's own click: usage errors and the like
            if type(exc).__name__ == "NoArgsIsHelpError":
                result = 0  # the help was shown: asking for nothing is asking for help
            else:
                ctx = getattr(exc, "ctx", None)
                where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                _fail(f"{exc.format_message()}{where}", exc.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except PenchantError as exc:
            _fail(exc.message, 1)
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 1)
        except Exception as exc:
            if os.environ.get("PENCHANT_DEBUG") == "1":
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} (PENCHANT_DEBUG=1 shows more)", 1)
        code = result if isinstance(result, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


def _fail(message: str, code: int) -> NoReturn:
    # One line, whatever the message holds: scripts read the last line of stderr.
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=_Group,
    name="penchant",
    help="Penchant: a self-hosted, privacy-first personalization engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(commands.init)
app.command("serve")(commands.serve)
app.command("stats")(commands.stats)
app.command("demo")(commands.demo)
app.command("send")(send.send)
app.command("evaluate")(evaluate.evaluate)
app.command("train")(models.train)
app.command("ope")(ope.ope)
app.command("simulate")(simulate.simulate)
app.add_typer(data.app, name="import")
app.add_typer(keys.app, name="keys")
app.add_typer(models.app, name="models")
app.add_typer(privacy.app, name="privacy")
app.add_typer(slots.app, name="slots")
app.add_typer(experiments.app, name="experiment")
app.add_typer(fairness.app, name="fairness")
app.add_typer(bandits.app, name="bandits")


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_version
    ),
) -> None:
    """Penchant: a self-hosted, privacy-first personalization engine."""


def main() -> None:
    """Run the command line (the `penchant` console script)."""
    app()
