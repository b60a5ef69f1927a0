"""``ldmdata edit DATASET_DIR --out DIR [--images ADV_DIR]``: edit with a diffusers pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ldmdata.cli.common import (
    EngineOpt,
    GpusPerWorkerOpt,
    RayAddressOpt,
    WorkersOpt,
    console,
    err_console,
    make_engine,
    user_errors,
)
from ldmdata.edit.params import EDITORS, PRESETS
from ldmdata.params import load_params, parse_prompts

Opt = typer.Option


@user_errors
def edit_command(
    dataset_dir: Annotated[Path, typer.Argument(
        help="The clean dataset (img2img, inpaint or sr): prompts, masks, and the images "
             "when --images is not given.")],
    out: Annotated[Path, Opt("--out", help="Folder for the edited set.")],
    images: Annotated[Path | None, Opt(
        "--images", help="An adversarial or defended set made from DATASET_DIR.")] = None,
    editor: Annotated[str | None, Opt(
        "--editor", help=f"{' | '.join(EDITORS)} (default: the dataset's task)")] = None,
    preset: Annotated[str, Opt("--preset", help=" | ".join(PRESETS))] = "paper",
    steps: Annotated[int | None, Opt("--steps", help="Denoising steps (paper: 100).")] = None,
    strength: Annotated[float | None, Opt(
        "--strength", help="img2img/inpaint strength (paper: 0.7; inpainting 1.0).")] = None,
    guidance: Annotated[float | None, Opt("--guidance", help="Guidance scale (7.5).")] = None,
    image_guidance: Annotated[float | None, Opt(
        "--image-guidance", help="InstructPix2Pix image guidance (1.5).")] = None,
    noise_level: Annotated[int | None, Opt(
        "--noise-level", help="x4 upscaler noise level (20).")] = None,
    eta: Annotated[float | None, Opt("--eta", help="DDIM eta (0).")] = None,
    seed: Annotated[int | None, Opt("--seed", help="Edit seed (9209).")] = None,
    invert_mask: Annotated[bool | None, Opt(
        "--invert-mask/--no-invert-mask",
        help="Inpainting: repaint the background, keep the entity (the study).")] = None,
    prompts: Annotated[str, Opt("--prompts", help="Prompts to edit: all or 0,2,...")] = "all",
    prompt_index: Annotated[str, Opt(
        "--prompt-index", help="same (the attacked prompt) or an index (prompt transfer).")
    ] = "same",
    defence: Annotated[str | None, Opt(
        "--defence", help="Defend the inputs first, e.g. jpeg:quality=75 (see ldmdata defend).")
    ] = None,
    limit: Annotated[int | None, Opt("--limit", help="Edit only the first N samples.")] = None,
    batch_size: Annotated[int, Opt("--batch-size", help="Edits per pipeline call.")] = 4,
    model: Annotated[str | None, Opt(
        "--model", help="Hub id or local pipeline folder (model transfer).")] = None,
    revision: Annotated[str | None, Opt("--revision", help="Pinned revision of --model.")] = None,
    profile: Annotated[str, Opt("--profile", help="tiny | real (model ids from params.yaml)")
    ] = "tiny",
    tiny_dir: Annotated[Path | None, Opt("--tiny-dir", help="Folder of the tiny model set.")
    ] = None,
    params_file: Annotated[Path, Opt(
        "--params", help="params.yaml with a models section (profile real).")
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
    """Edit a clean, adversarial or defended set with a Stable Diffusion pipeline."""
    from ldmdata.edit.runner import EditOptions, edit, parse_prompt_index

    models_params = {}
    if profile == "real":
        models_params = dict(load_params(params_file).get("models") or {})
    overrides = dict(
        num_inference_steps=steps, strength=strength, guidance_scale=guidance,
        image_guidance_scale=image_guidance, noise_level=noise_level, eta=eta, seed=seed,
        invert_mask=invert_mask,
    )
    options = EditOptions(
        prompts=parse_prompts(prompts), prompt_index=parse_prompt_index(prompt_index),
        limit=limit, batch_size=batch_size, device=device, dtype=dtype, shard_size=shard_size,
        threads=threads, overwrite=overwrite,
        engine=make_engine(engine, ray_address, workers, gpus_per_worker),
    )
    bar = Progress(TextColumn("edit"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True)
    job = bar.add_task("edit", total=None)

    def progress(done: int, total: int) -> None:
        if not bar.live.is_started:  # the first batch is done: every check has passed
            bar.start()
        bar.update(job, completed=done, total=total)

    try:
        manifest = edit(
            dataset_dir, out, images_dir=images, editor=editor, preset=preset,
            overrides=overrides, defence=defence, profile=profile, models_params=models_params,
            tiny_dir=tiny_dir, model=model, revision=revision, options=options,
            progress=progress,
        )
    finally:
        if bar.live.is_started:
            bar.stop()
    console.print(
        f"{out}: {manifest['n']} edits ({manifest['editor']}, {manifest['input_kind']} input), "
        f"content_hash {manifest['content_hash']}",
        markup=False,
    )
