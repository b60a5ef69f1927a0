"""The real ``ldmdata`` command line, for tests: its subcommands as registered in the app."""

from __future__ import annotations

import click
import click.testing
import typer

from ldmdata.cli.app import app


def command(name: str | None = None) -> click.Command:
    """The ``ldmdata`` app, or its subcommand ``name`` exactly as the app registers it."""
    group = typer.main.get_command(app)
    return group if name is None else group.commands[name]


class CliRunner(click.testing.CliRunner):
    """click's runner (typer's only takes Typer apps; these are the app's click commands)."""
