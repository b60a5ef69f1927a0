"""``ldmdata models tiny``: write the offline tiny model set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.cli.common import console, user_errors
from ldmdata.errors import LdmdataError

app = typer.Typer(help="Model sets.", no_args_is_help=True)


@app.command("tiny")
@user_errors
def tiny(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the tiny set into.")],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="Only these roles (repeatable).")
    ] = None,
) -> None:
    """Write the tiny model set: small random models with the real architectures (noise
    outputs; for offline tests and the default pipeline)."""
    from ldmdata.models.tiny import BUILDERS, build_tiny_models

    unknown = sorted(set(role or []) - set(BUILDERS))
    if unknown:
        raise LdmdataError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(BUILDERS)}")
    build_tiny_models(out, role or None)
    console.print(f"{out}: tiny models for {', '.join(role or BUILDERS)}")
