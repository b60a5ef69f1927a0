"""``ldmdata trace FILE``: walk a metrics or report file back to its source data and check it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.cli.common import console, err_console, user_errors


@user_errors
def trace_command(
    target: Annotated[Path, typer.Argument(
        help="A metrics JSON, per-sample parquet, report (md/html) or set folder.")],
    lock: Annotated[Path | None, typer.Option(
        "--lock", help="dvc.lock to check against (default: the project's).")] = None,
) -> None:
    """Print the chain back to the source; exit 1 naming the first broken link."""
    from ldmdata.trace import trace

    result = trace(target, lock)
    lines = result.lines()
    for line in lines[:-1]:
        console.print(line, markup=False)
    if result.broken is not None:
        err_console.print(lines[-1], markup=False)
        raise typer.Exit(1)
    console.print(lines[-1], markup=False)
