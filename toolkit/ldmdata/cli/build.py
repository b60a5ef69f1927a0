"""``ldmdata build inpaint|img2img|sr``: build a dataset from a source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ldmdata.cli.common import console, user_errors
from ldmdata.cli.options import BatchSize, Device, Overwrite, Seed, ShardSize, TinyDir
from ldmdata.params import load_params

app = typer.Typer(help="Build a benchmark dataset.", no_args_is_help=True)

N = Annotated[
    int | None,
    typer.Option("--n", help="Rows in the finished dataset (rejects do not count) "
                 "[default: all of a curated source such as ldm-robustness:, else 100]."),
]
Out = Annotated[
    Path | None,
    typer.Option("--out", help="Output folder [default: data/datasets/<task>]; resumed if "
                 "unfinished, up to date if built with the same settings."),
]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        help="synthetic | folder:PATH | coco:ANN_JSON[:IMAGES] | hf:NAME[:CONFIG][:SPLIT] | "
        "ldm-robustness:PATH (the study's released dataset folder)"
    ),
]
ProfileOrParams = Annotated[
    str | None, typer.Option("--profile", help="tiny (offline random models) | real (Hub ids) "
                             "[default: the params file's models.profile, else tiny].")
]
ParamsOpt = Annotated[
    Path | None,
    typer.Option("--params", help="A params.yaml: build_<task>, source and models sections."),
]
EngineName = Annotated[str | None, typer.Option(
    "--engine", help="local | ray: where the model batches run (default: the params, else local).")]
RayAddress = Annotated[str | None, typer.Option(
    "--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray).")]
RayWorkers = Annotated[int | None, typer.Option(
    "--workers", help="Ray workers, each with its own models (params: ray_workers).")]
GpusPerWorker = Annotated[float | None, typer.Option(
    "--gpus-per-worker", help="GPUs per Ray worker (set --device cuda to use them).")]


def _engine_options(engine, ray_address, workers, gpus_per_worker) -> dict:
    return {"engine": engine, "ray_address": ray_address, "ray_workers": workers,
            "gpus_per_worker": gpus_per_worker}


def _run(task: str, out: Path, options: dict, source: str | None, profile: str | None,
         params_file: Path | None, overwrite: bool, tiny_dir: Path | None) -> None:
    from ldmdata.builders import build_dataset

    params = load_params(params_file) if params_file else {}
    section = dict(params.get(f"build_{task}") or {})
    section.update({k: v for k, v in options.items() if v is not None})
    models = dict(params.get("models") or {})
    source = source or (params.get("source") or {}).get("spec") or "synthetic"
    profile = profile or models.pop("profile", None) or "tiny"
    models.pop("profile", None)
    out = out or Path("data/datasets") / task
    bar = Progress(
        TextColumn(f"build {task}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rejected {task.fields[rejected]}"), TimeElapsedColumn(),
        console=console,
    )
    job = bar.add_task(task, total=section.get("n"), rejected=0)  # None: the source decides

    def progress(written: int, rejected: int) -> None:
        if not bar.live.is_started:  # first rows: every check has passed, show the bar
            bar.start()
        bar.update(job, completed=written, rejected=rejected)

    try:
        manifest = build_dataset(
            task, out, section, source=source, profile=profile, models_params=models,
            tiny_dir=tiny_dir, overwrite=overwrite, on_progress=progress,
        )
    finally:
        if bar.live.is_started:
            bar.stop()
    if manifest.get("exhausted"):
        console.print(
            f"source ran out: built {manifest['n']} of {manifest['n_requested']} requested rows"
        )
    console.print(
        f"{out}: {manifest['n']} rows in {len(manifest['shards'])} shard(s), "
        f"{manifest['rejects']['count']} rejected, content_hash {manifest['content_hash']}"
    )


def _command(task: str, extra_help: str = ""):
    @user_errors
    def command(
        n: N = None, out: Out = None, source: SourceOpt = None, seed: Seed = None,
        profile: ProfileOrParams = None, params: ParamsOpt = None, shard_size: ShardSize = None,
        batch_size: BatchSize = None, device: Device = None, tiny_dir: TinyDir = None,
        overwrite: Overwrite = False, engine: EngineName = None, ray_address: RayAddress = None,
        workers: RayWorkers = None, gpus_per_worker: GpusPerWorker = None,
    ) -> None:
        options = {"n": n, "seed": seed, "shard_size": shard_size, "batch_size": batch_size,
                   "device": device,
                   **_engine_options(engine, ray_address, workers, gpus_per_worker)}
        _run(task, out, options, source, profile, params, overwrite, tiny_dir)

    command.__doc__ = f"Build the {task} dataset.{extra_help}"
    return command


app.command("inpaint")(_command(
    "inpaint", " Image + caption + main-entity SAM mask + CLIP-chosen edit prompts."
))
app.command("img2img")(_command("img2img", " Image + caption + CLIP-chosen edit prompts."))


@app.command("sr")
@user_errors
def build_sr(
    n: N = None, out: Out = None, source: SourceOpt = None, seed: Seed = None,
    profile: ProfileOrParams = None, params: ParamsOpt = None, shard_size: ShardSize = None,
    batch_size: BatchSize = None, device: Device = None, tiny_dir: TinyDir = None,
    overwrite: Overwrite = False,
    scale: Annotated[int | None, typer.Option(help="HR side / LR side.")] = None,
    degradation: Annotated[str | None, typer.Option(help="bicubic | realesrgan")] = None,
    engine: EngineName = None, ray_address: RayAddress = None, workers: RayWorkers = None,
    gpus_per_worker: GpusPerWorker = None,
) -> None:
    """Build the sr dataset. HR + degraded LR + caption + CLIP-chosen edit prompts."""
    options = {"n": n, "seed": seed, "shard_size": shard_size, "batch_size": batch_size,
               "device": device, "scale": scale, "degradation": degradation,
               **_engine_options(engine, ray_address, workers, gpus_per_worker)}
    _run("sr", out, options, source, profile, params, overwrite, tiny_dir)
