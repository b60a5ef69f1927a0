"""The real ``ldmdata`` command line, for ``typer.testing.CliRunner``."""

from __future__ import annotations

import click
import typer

from ldmdata.cli.app import app


def command(name: str | None = None) -> click.Command:
    """The ``ldmdata`` app, or its subcommand ``name`` exactly as the app registers it."""
    group = typer.main.get_command(app)
    return group if name is None else group.commands[name]
