"""What every command shares: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import functools
from typing import Annotated

import typer
from rich.console import Console

from ldmdata.engine import Engine
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


# The engine options of every stage command (``ldmdata.engine``).
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="local | ray: where the batches run (same output bytes either way).")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray for "
    "the run).")]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Ray workers (actors), each with "
                                         "its own models.")]
GpusPerWorkerOpt = Annotated[float, typer.Option("--gpus-per-worker",
                                                 help="GPUs per Ray worker (0: CPU).")]


def make_engine(engine: str, ray_address: str | None, workers: int,
                gpus_per_worker: float) -> Engine:
    """The checked :class:`Engine` of a command's engine options."""
    chosen = Engine(engine, ray_address, workers, gpus_per_worker)
    chosen.check()
    return chosen
