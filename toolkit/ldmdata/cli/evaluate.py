"""``ldmdata evaluate EDITS --reference CLEAN_EDITS --dataset DIR --out FILE.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.cli.common import console, user_errors
from ldmdata.errors import LdmdataError
from ldmdata.metrics.settings import DEFAULTS, PROTOCOLS, evaluate_settings
from ldmdata.params import load_params

Opt = typer.Option


def parse_psnr_cap(text: str | None) -> dict:
    """``--psnr-cap``: a number of dB, or ``none`` to keep inf; not given: the library's."""
    if text is None:
        return {}
    if text.strip().lower() in ("none", "null"):
        return {"psnr_cap": None}
    try:
        return {"psnr_cap": float(text)}
    except ValueError:
        raise LdmdataError(f"--psnr-cap takes a number of dB or none, got {text!r}") from None


@user_errors
def evaluate_command(
    edits_dir: Annotated[Path, typer.Argument(help="Edits of adversarial (or defended) images.")],
    reference: Annotated[Path, Opt(
        "--reference", help="Edits of the clean images, same model, settings and seed.")],
    dataset: Annotated[Path, Opt("--dataset", help="The clean dataset (source images).")],
    out: Annotated[Path, Opt("--out", help="Summary JSON (DVC metrics).")],
    table: Annotated[Path | None, Opt(
        "--table", help="Per-sample parquet (default: next to --out).")] = None,
    protocol: Annotated[str | None, Opt("--protocol", help=(
        f"{' | '.join(PROTOCOLS)}: ours (scikit-image's SSIM/PSNR per pair) or the study's "
        f"code (JPEG, 512 px, pooled PSNR, SSIM on 0-255) (default: {DEFAULTS['protocol']})"))
    ] = None,
    metrics: Annotated[str | None, Opt("--metrics", help=(
        f"Comma-separated subset of: {', '.join(DEFAULTS['metrics'])} (default: all)"))] = None,
    features: Annotated[str | None, Opt("--features", help=(
        f"FID/IS features: auto | clip | inception (default: {DEFAULTS['features']})"))] = None,
    inception_weights: Annotated[str | None, Opt(
        "--inception-weights", help="torch-fidelity Inception weights file.")] = None,
    psnr_cap: Annotated[str | None, Opt("--psnr-cap", help=(
        "dB reported for identical images, or none to keep inf (left out of the mean and "
        f"counted) (default: {DEFAULTS['psnr_cap']})"))] = None,
    bootstrap: Annotated[int | None, Opt("--bootstrap", help=(
        f"Cluster-bootstrap resamples (default: {DEFAULTS['bootstrap']})"))] = None,
    set_bootstrap: Annotated[int | None, Opt("--set-bootstrap", help=(
        f"Resamples for the FID / IS intervals (default: {DEFAULTS['set_bootstrap']})"))
    ] = None,
    seed: Annotated[int | None, Opt(
        "--seed", help=f"Bootstrap seed (default: {DEFAULTS['seed']})")] = None,
    batch_size: Annotated[int | None, Opt("--batch-size", help=(
        f"Images per metric batch (default: {DEFAULTS['batch_size']})"))] = None,
    clip_model: Annotated[str | None, Opt(
        "--clip-model", help="CLIP Hub id or local folder (default: the profile's).")] = None,
    profile: Annotated[str, Opt("--profile", help="tiny | real")] = "tiny",
    tiny_dir: Annotated[Path | None, Opt("--tiny-dir", help="Folder of the tiny model set.")
    ] = None,
    params_file: Annotated[Path, Opt("--params", help="params.yaml (profile real).")
    ] = Path("params.yaml"),
    device: Annotated[str | None, Opt(
        "--device", help=f"auto | cpu | cuda[:N] (default: {DEFAULTS['device']})")] = None,
    precision: Annotated[str | None, Opt("--precision", help=(
        "PSNR/SSIM/MS-SSIM in float64 (exact) or float32 (fast on CPU) "
        f"(default: {DEFAULTS['precision']})"))] = None,
    threads: Annotated[int | None, Opt(
        "--threads", help="torch CPU threads (default: torch's choice).")] = None,
) -> None:
    """PSNR, SSIM, MS-SSIM vs the clean edits, CLIP score, FID and IS, with provenance."""
    given = {
        "protocol": protocol, "features": features, "inception_weights": inception_weights,
        "bootstrap": bootstrap, "set_bootstrap": set_bootstrap, "seed": seed,
        "batch_size": batch_size, "device": device, "precision": precision, "threads": threads,
        "metrics": [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None,
    }
    settings = evaluate_settings({**{k: v for k, v in given.items() if v is not None},
                                  **parse_psnr_cap(psnr_cap)})
    from ldmdata.metrics.evaluation import evaluate
    from ldmdata.models.refs import ModelRef, resolve
    from ldmdata.models.tiny import ensure_tiny_models

    if clip_model:
        clip = ModelRef("clip", clip_model, None)
    else:
        models = dict(load_params(params_file).get("models") or {}) if profile == "real" else {}
        clip = resolve("clip", profile, models, tiny_dir)
        if profile == "tiny":
            ensure_tiny_models(Path(clip.id).parent, ["clip"])
    table = table or out.with_suffix(".parquet")
    summary = evaluate(edits_dir, reference, dataset, out, table, clip, settings)
    shown = []
    for name, entry in summary["metrics"].items():
        value = entry["mean"]
        shown.append(f"{name} {value:.4g}" if value is not None else f"{name} n/a")
    console.print(f"{out} ({summary['protocol']} protocol): {', '.join(shown)}", markup=False)
