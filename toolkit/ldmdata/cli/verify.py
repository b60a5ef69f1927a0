"""``ldmdata verify DIR``: re-hash a dataset against its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.cli.common import console, err_console, user_errors


@user_errors
def verify_command(
    folder: Annotated[Path, typer.Argument(help="A dataset folder written by ldmdata.")],
) -> None:
    """Re-hash every shard and row against manifest.json; exit 1 naming the first mismatch."""
    from ldmdata.dataset import read_manifest, verify

    problems = verify(folder)
    if problems:
        err_console.print(f"{folder}: {problems[0]}", markup=False)
        for more in problems[1:]:
            err_console.print(f"  also: {more}", markup=False)
        raise typer.Exit(1)
    manifest = read_manifest(folder)
    console.print(
        f"{folder}: intact ({manifest['n']} rows, content_hash {manifest['content_hash']})"
    )
