"""``ldmdata attack DATASET_DIR --out DIR --target TARGET``: adversarial versions of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.attacks.params import METHODS, PRESETS
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
from ldmdata.errors import LdmdataError

Opt = typer.Option


@user_errors
def attack_command(
    dataset_dir: Annotated[
        Path | None, typer.Argument(help="An img2img, inpaint or sr dataset built by ldmdata.")
    ] = None,
    out: Annotated[Path | None, Opt("--out", help="Folder for the adversarial dataset.")] = None,
    target: Annotated[str | None, Opt(
        "--target", help="Module to attack (bim): a named target or a dotted module path.")] = None,
    method: Annotated[str, Opt("--method", help=" | ".join(METHODS))] = "bim",
    preset: Annotated[str | None, Opt(
        "--preset", help=f"{' | '.join(PRESETS)} (default: the method's own; bim: paper)")
    ] = None,
    eps: Annotated[float | None, Opt("--eps", help="Perturbation budget in [0,1] pixels.")] = None,
    iterations: Annotated[int | None, Opt("--iterations", help="Attack iterations.")] = None,
    step_size: Annotated[float | None, Opt("--step-size", help="Step per iteration.")] = None,
    seed: Seed = None,
    inference_steps: InferenceSteps = None,
    strength: Strength = None,
    guidance: Guidance = None,
    eta: Eta = None,
    editor: Annotated[str | None, Opt("--editor", help=(
        "Attacked model: img2img | inpaint | upscale | ip2p (default: the dataset task's own; "
        "ip2p on img2img datasets)"))] = None,
    image_guidance: ImageGuidance = None,
    noise_level: NoiseLevel = None,
    norm: Annotated[str | None, Opt("--norm", help="linf | l2")] = None,
    grad_reps: Annotated[int | None, Opt(
        "--grad-reps", help="Gradients averaged over this many noise draws.")] = None,
    target_image: Annotated[str | None, Opt(
        "--target-image",
        help="PhotoGuard/Mist/SDST target: zeros | gray | pattern | an image file.")] = None,
    attack_prompt: Annotated[str | None, Opt(
        "--attack-prompt",
        help="Protections: condition on this text (default: the pair's prompt).")] = None,
    t_min: Annotated[int | None, Opt("--t-min", help="Protections: lowest timestep drawn.")
    ] = None,
    t_max: Annotated[int | None, Opt("--t-max", help="Protections: highest timestep drawn.")
    ] = None,
    semantic_weight: Annotated[float | None, Opt(
        "--semantic-weight", help="Mist/SDST: weight of the diffusion loss.")] = None,
    mask_shrink: Annotated[float | None, Opt(
        "--mask-shrink", help="DiffusionGuard: mask augmentation strength in [0, 1].")] = None,
    mask_aware: Annotated[bool | None, Opt(
        "--mask-aware/--no-mask-aware",
        help="Inpainting: perturb only the region the model keeps.")] = None,
    feature_rows: Annotated[str | None, Opt(
        "--feature-rows",
        help="Guidance rows a UNet-target loss compares: uncond (the study) | cond | both.")
    ] = None,
    storage: Annotated[str | None, Opt(
        "--storage", help="8-bit storage: round (in the eps ball) | truncate (the study's).")
    ] = None,
    eot: Annotated[str | None, Opt(
        "--eot", help="Defences the attack expects: SPEC[,SPEC...], e.g. jpeg:quality=75,"
        "diffpure:bpda=identity (EOT; purifiers by BPDA).")] = None,
    eot_samples: Annotated[int | None, Opt(
        "--eot-samples", help="Defence draws averaged per gradient step (with --eot).")] = None,
    prompts: Prompts = None,
    limit: Limit = None,
    batch_size: BatchSize = None,
    model: Model = None,
    revision: Revision = None,
    profile: ProfileOpt = "tiny",
    tiny_dir: TinyDir = None,
    params_file: ParamsFile = Path("params.yaml"),
    device: Device = None,
    dtype: Dtype = None,
    gradient_checkpointing: Annotated[bool | None, Opt(
        "--gradient-checkpointing", help="Trade compute for memory (GPU).")] = None,
    shard_size: ShardSize = None,
    threads: Threads = None,
    overwrite: Overwrite = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = 1,
    gpus_per_worker: GpusPerWorkerOpt = 0,
    list_targets: Annotated[bool, Opt("--list-targets", help="Print the named targets.")] = False,
) -> None:
    """Craft adversarial versions of a dataset against a Stable Diffusion editing model."""
    from ldmdata.attacks.runner import RunOptions, attack
    from ldmdata.attacks.targets import describe_targets

    if list_targets:
        for name, path, editors, text in describe_targets():
            console.print(f"{name:<20} {path:<58} {editors:<29} {text}", markup=False)
        return
    if dataset_dir is None or out is None:
        raise LdmdataError("give DATASET_DIR and --out (or --list-targets)")
    overrides = dict(
        eps=eps, iterations=iterations, step_size=step_size, seed=seed,
        num_inference_steps=inference_steps, strength=strength, guidance_scale=guidance,
        eta=eta, norm=norm, grad_reps=grad_reps, target_image=target_image,
        mask_aware=mask_aware, feature_rows=feature_rows, storage=storage, editor=editor,
        image_guidance_scale=image_guidance, noise_level=noise_level, eot=eot,
        eot_samples=eot_samples, attack_prompt=attack_prompt, t_min=t_min, t_max=t_max,
        semantic_weight=semantic_weight, mask_shrink=mask_shrink,
    )
    options = job_options(
        RunOptions, prompts=prompts, limit=limit, batch_size=batch_size, device=device,
        dtype=dtype, gradient_checkpointing=gradient_checkpointing, shard_size=shard_size,
        threads=threads, overwrite=overwrite,
        engine=make_engine(engine, ray_address, workers, gpus_per_worker),
    )
    with progress_bar("attack") as progress:
        manifest = attack(
            dataset_dir, out, method=method, target=target, preset=preset, overrides=overrides,
            profile=profile, models_params=real_models(profile, params_file, model),
            tiny_dir=tiny_dir, model=model, revision=revision, options=options,
            progress=progress,
        )
    seconds = manifest["timing"]["seconds_per_sample"]
    console.print(
        f"{out}: {manifest['n']} adversarial images ({manifest['attack']['method']}"
        f"{', ' + manifest['attack']['target'] if manifest['attack']['target'] else ''}), "
        f"content_hash {manifest['content_hash']}"
        + (f", {seconds:.2f} s/sample" if seconds is not None else ""),
        markup=False,
    )
