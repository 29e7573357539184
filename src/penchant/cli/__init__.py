"""The `penchant` command line: thin typer commands over the jobs."""

from penchant.cli.app import app, main

__all__ = ["app", "main"]
