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
from ldmdata.params import load_params
from ldmdata.purify.spec import DEFAULTS

Opt = typer.Option

_HELP = "; ".join(f"{m}:{','.join(f'{k}={v!r}' for k, v in p.items())}"
                  for m, p in DEFAULTS.items())


@user_errors
def defend_command(
    input_dir: Annotated[Path, typer.Argument(help="A clean dataset or an adversarial set.")],
    out: Annotated[Path, Opt("--out", help="Folder for the defended set.")],
    defence: Annotated[str, Opt("--defence", help=f"METHOD[:key=value,...]; defaults: {_HELP}")],
    limit: Annotated[int | None, Opt("--limit", help="Defend only the first N samples.")] = None,
    batch_size: Annotated[int, Opt("--batch-size", help="Images per call.")] = 8,
    model: Annotated[str | None, Opt(
        "--model", help="The defence's model, Hub id or local folder: the x4 upscaler "
        "(noisy_upscale) or SD img2img (diffpure, gridpure, impress).")] = None,
    revision: Annotated[str | None, Opt("--revision", help="Pinned revision of --model.")] = None,
    profile: Annotated[str, Opt("--profile", help="tiny | real")] = "tiny",
    tiny_dir: Annotated[Path | None, Opt("--tiny-dir", help="Folder of the tiny model set.")
    ] = None,
    params_file: Annotated[Path, Opt("--params", help="params.yaml (profile real).")
    ] = Path("params.yaml"),
    device: Annotated[str, Opt("--device", help="auto | cpu | cuda[:N]")] = "auto",
    dtype: Annotated[str, Opt("--dtype", help="float32 | float16 | bfloat16")] = "float32",
    shard_size: Annotated[int, Opt("--shard-size", help="Rows per parquet shard.")] = 1000,
    threads: Annotated[int | None, Opt(
        "--threads", help="torch CPU threads (default: torch's choice).")] = None,
    overwrite: Annotated[bool, Opt("--overwrite", help="Replace an existing output.")] = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = 1,
    gpus_per_worker: GpusPerWorkerOpt = 0,
) -> None:
    """Apply a defence (JPEG, blur, noise, resize, noisy upscaling, DiffPure, GrIDPure, IMPRESS)
    to every image of a set."""
    from ldmdata.defend.runner import DefendOptions, defend

    models_params = {}
    if profile == "real":
        models_params = dict(load_params(params_file).get("models") or {})
    options = DefendOptions(limit=limit, batch_size=batch_size, device=device, dtype=dtype,
                            shard_size=shard_size, threads=threads, overwrite=overwrite,
                            engine=make_engine(engine, ray_address, workers, gpus_per_worker))
    manifest = defend(input_dir, out, defence, profile=profile, models_params=models_params,
                      tiny_dir=tiny_dir, model=model, revision=revision, options=options)
    console.print(f"{out}: {manifest['n']} images defended with {manifest['defence']['label']}, "
                  f"content_hash {manifest['content_hash']}", markup=False)
