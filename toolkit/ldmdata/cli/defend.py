"""``ldmdata defend INPUT_DIR --out DIR --defence jpeg:quality=75``: purify a set of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.cli.common import (
    EngineOpt,
    GpusPerWorkerOpt,
    RayAddressOpt,
    WorkersOpt,
    console,
    make_engine,
    user_errors,
)
from ldmdata.cli.options import (
    BatchSize,
    Device,
    Dtype,
    Limit,
    Overwrite,
    ParamsFile,
    ProfileOpt,
    Revision,
    ShardSize,
    Threads,
    TinyDir,
    job_options,
    progress_bar,
    real_models,
)
from ldmdata.purify.spec import DEFAULTS

Opt = typer.Option

_HELP = "; ".join(f"{m}:{','.join(f'{k}={v!r}' for k, v in p.items())}"
                  for m, p in DEFAULTS.items())


@user_errors
def defend_command(
    input_dir: Annotated[Path, typer.Argument(help="A clean dataset or an adversarial set.")],
    out: Annotated[Path, Opt("--out", help="Folder for the defended set.")],
    defence: Annotated[str, Opt("--defence", help=f"METHOD[:key=value,...]; defaults: {_HELP}")],
    limit: Limit = None,
    batch_size: BatchSize = None,
    model: Annotated[str | None, Opt(
        "--model", help="The defence's model, Hub id or local folder: the x4 upscaler "
        "(noisy_upscale) or SD img2img (diffpure, gridpure, impress).")] = None,
    revision: Revision = None,
    profile: ProfileOpt = "tiny",
    tiny_dir: TinyDir = None,
    params_file: ParamsFile = Path("params.yaml"),
    device: Device = None,
    dtype: Dtype = None,
    shard_size: ShardSize = None,
    threads: Threads = None,
    overwrite: Overwrite = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = 1,
    gpus_per_worker: GpusPerWorkerOpt = 0,
) -> None:
    """Apply a defence (JPEG, blur, noise, resize, noisy upscaling, DiffPure, GrIDPure, IMPRESS)
    to every image of a set."""
    from ldmdata.defend.runner import DefendOptions, defend

    options = job_options(DefendOptions, limit=limit, batch_size=batch_size, device=device,
                          dtype=dtype, shard_size=shard_size, threads=threads,
                          overwrite=overwrite,
                          engine=make_engine(engine, ray_address, workers,
                                             gpus_per_worker))
    with progress_bar("defend") as progress:
        manifest = defend(input_dir, out, defence, profile=profile,
                          models_params=real_models(profile, params_file, model),
                          tiny_dir=tiny_dir, model=model, revision=revision, options=options,
                          progress=progress)
    console.print(f"{out}: {manifest['n']} images defended with {manifest['defence']['label']}, "
                  f"content_hash {manifest['content_hash']}", markup=False)
