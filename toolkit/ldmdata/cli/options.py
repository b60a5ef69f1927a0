"""Every option the commands share, defined once, and the helpers the job commands share.

Run options default to None: a value the user did not give is left to the library, where each
default is defined once (``ldmdata.dataset.jobs.JobOptions`` and its subclasses). Attack
iterations are ``--iterations``; denoising steps are ``--inference-steps`` everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ldmdata.cli.common import err_console
from ldmdata.params import load_params, parse_prompts

Opt = typer.Option

Out = Annotated[Path, Opt("--out", help="Folder for the output set.")]
ProfileOpt = Annotated[str, Opt(
    "--profile", help="tiny (offline random-weight models) | real (params.yaml's Hub ids)")]
TinyDir = Annotated[Path | None, Opt(
    "--tiny-dir", help="Folder of the tiny model set (built there on first use).")]
ParamsFile = Annotated[Path, Opt(
    "--params", help="params.yaml whose models section names the real models.")]
Model = Annotated[str | None, Opt("--model", help="Hub id or local pipeline folder.")]
Revision = Annotated[str | None, Opt("--revision", help="Pinned revision of --model.")]
Device = Annotated[str | None, Opt("--device", help="auto | cpu | cuda[:N] (default: auto)")]
Dtype = Annotated[str | None, Opt(
    "--dtype", help="float32 | float16 | bfloat16 (default: float32)")]
ShardSize = Annotated[int | None, Opt("--shard-size", help="Rows per parquet shard.")]
BatchSize = Annotated[int | None, Opt("--batch-size", help="Items per model call.")]
Threads = Annotated[int | None, Opt(
    "--threads", help="torch CPU threads (default: torch's choice).")]
Limit = Annotated[int | None, Opt("--limit", help="Only the first N samples of the input.")]
Prompts = Annotated[str | None, Opt("--prompts", help="Prompt indices: all or 0,2,...")]
Overwrite = Annotated[bool, Opt(
    "--overwrite", help="Replace an output made with other settings (the same resume).")]
Seed = Annotated[int | None, Opt("--seed", help="Seed of every random draw.")]
InferenceSteps = Annotated[int | None, Opt(
    "--inference-steps", help="Denoising steps of the edit.")]
Strength = Annotated[float | None, Opt("--strength", help="img2img/inpaint strength (0, 1].")]
Guidance = Annotated[float | None, Opt("--guidance", help="Guidance scale.")]
ImageGuidance = Annotated[float | None, Opt(
    "--image-guidance", help="InstructPix2Pix image guidance scale.")]
NoiseLevel = Annotated[int | None, Opt("--noise-level", help="x4 upscaler noise level.")]
Eta = Annotated[float | None, Opt("--eta", help="DDIM eta.")]


def job_options(cls, **given):
    """``cls`` (a :class:`~ldmdata.dataset.jobs.JobOptions`) from the values the user gave."""
    if given.get("prompts") is not None:
        given["prompts"] = parse_prompts(given["prompts"])
    return cls(**{k: v for k, v in given.items() if v is not None})


def real_models(profile: str, params_file: Path, model: str | None = None) -> dict:
    """params.yaml's ``models`` section when the real profile picks the models, else ``{}``."""
    if profile != "real" or model is not None:
        return {}
    return dict(load_params(params_file).get("models") or {})


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A ``progress(done, total)`` callback drawing a bar on stderr from its first call on, so
    nothing is drawn before every check has passed and the first batch is done."""
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True)
    job = bar.add_task(label, total=None)

    def progress(done: int, total: int | None) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(job, completed=done, total=total)

    try:
        yield progress
    finally:
        if bar.live.is_started:
            bar.stop()
