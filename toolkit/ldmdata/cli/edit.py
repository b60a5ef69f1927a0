"""``ldmdata edit DATASET_DIR --out DIR [--images ADV_DIR]``: edit with a diffusers pipeline."""

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
    Eta,
    Guidance,
    ImageGuidance,
    InferenceSteps,
    Limit,
    Model,
    NoiseLevel,
    Overwrite,
    ParamsFile,
    ProfileOpt,
    Prompts,
    Revision,
    Seed,
    ShardSize,
    Strength,
    Threads,
    TinyDir,
    job_options,
    progress_bar,
    real_models,
)
from ldmdata.edit.params import EDITORS, PRESETS

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
    inference_steps: InferenceSteps = None,
    strength: Strength = None,
    guidance: Guidance = None,
    image_guidance: ImageGuidance = None,
    noise_level: NoiseLevel = None,
    eta: Eta = None,
    seed: Seed = None,
    invert_mask: Annotated[bool | None, Opt(
        "--invert-mask/--no-invert-mask",
        help="Inpainting: repaint the background, keep the entity (the study).")] = None,
    prompts: Prompts = None,
    prompt_index: Annotated[str | None, Opt(
        "--prompt-index", help="same (the attacked prompt) or an index (prompt transfer).")
    ] = None,
    defence: Annotated[str | None, Opt(
        "--defence", help="Defend the inputs first, e.g. jpeg:quality=75 (see ldmdata defend).")
    ] = None,
    limit: Limit = None,
    batch_size: BatchSize = None,
    model: Model = None,
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
    """Edit a clean, adversarial or defended set with a Stable Diffusion pipeline."""
    from ldmdata.edit.runner import EditOptions, edit, parse_prompt_index

    overrides = dict(
        num_inference_steps=inference_steps, strength=strength, guidance_scale=guidance,
        image_guidance_scale=image_guidance, noise_level=noise_level, eta=eta, seed=seed,
        invert_mask=invert_mask,
    )
    options = job_options(
        EditOptions, prompts=prompts,
        prompt_index=None if prompt_index is None else parse_prompt_index(prompt_index),
        limit=limit, batch_size=batch_size, device=device, dtype=dtype, shard_size=shard_size,
        threads=threads, overwrite=overwrite,
        engine=make_engine(engine, ray_address, workers, gpus_per_worker),
    )
    with progress_bar("edit") as progress:
        manifest = edit(
            dataset_dir, out, images_dir=images, editor=editor, preset=preset,
            overrides=overrides, defence=defence, profile=profile,
            models_params=real_models(profile, params_file), tiny_dir=tiny_dir, model=model,
            revision=revision, options=options, progress=progress,
        )
    console.print(
        f"{out}: {manifest['n']} edits ({manifest['editor']}, {manifest['input_kind']} input), "
        f"content_hash {manifest['content_hash']}",
        markup=False,
    )
