"""What every command shares: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import functools

import typer
from rich.console import Console

from ldmdata.errors import LdmdataError

err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
console = Console(highlight=False, soft_wrap=True, emoji=False)


def user_errors(command):
    """Decorate a command so an :class:`LdmdataError` prints ``error: ...`` and exits 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except LdmdataError as err:
            err_console.print(f"error: {err}", markup=False)
            raise typer.Exit(2) from None

    return wrapper
