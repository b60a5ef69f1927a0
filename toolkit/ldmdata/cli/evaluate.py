"""``ldmdata evaluate EDITS --reference CLEAN_EDITS --dataset DIR --out FILE.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.cli.common import console, user_errors
from ldmdata.metrics.names import METRICS
from ldmdata.params import load_params

Opt = typer.Option


@user_errors
def evaluate_command(
    edits_dir: Annotated[Path, typer.Argument(help="Edits of adversarial (or defended) images.")],
    reference: Annotated[Path, Opt(
        "--reference", help="Edits of the clean images, same model, settings and seed.")],
    dataset: Annotated[Path, Opt("--dataset", help="The clean dataset (source images).")],
    out: Annotated[Path, Opt("--out", help="Summary JSON (DVC metrics).")],
    table: Annotated[Path | None, Opt(
        "--table", help="Per-sample parquet (default: next to --out).")] = None,
    metrics: Annotated[str, Opt("--metrics", help="Comma-separated subset of: "
                                                  + ", ".join(METRICS))
    ] = ",".join(METRICS),
    features: Annotated[str, Opt(
        "--features", help="FID/IS features: auto | clip | inception")] = "auto",
    inception_weights: Annotated[str | None, Opt(
        "--inception-weights", help="torch-fidelity Inception weights file.")] = None,
    psnr_cap: Annotated[float, Opt(
        "--psnr-cap", help="dB reported for identical images (0 = keep inf).")] = 100.0,
    bootstrap: Annotated[int, Opt("--bootstrap", help="Bootstrap resamples.")] = 1000,
    set_bootstrap: Annotated[int, Opt(
        "--set-bootstrap", help="Resamples for the FID / IS intervals.")] = 100,
    seed: Annotated[int, Opt("--seed", help="Bootstrap seed.")] = 0,
    batch_size: Annotated[int, Opt("--batch-size", help="Images per metric batch.")] = 16,
    clip_model: Annotated[str | None, Opt(
        "--clip-model", help="CLIP Hub id or local folder (default: the profile's).")] = None,
    profile: Annotated[str, Opt("--profile", help="tiny | real")] = "tiny",
    tiny_dir: Annotated[Path | None, Opt("--tiny-dir", help="Folder of the tiny model set.")
    ] = None,
    params_file: Annotated[Path, Opt("--params", help="params.yaml (profile real).")
    ] = Path("params.yaml"),
    device: Annotated[str, Opt("--device", help="auto | cpu | cuda[:N]")] = "auto",
    precision: Annotated[str, Opt(
        "--precision", help="PSNR/SSIM/MS-SSIM in float64 (exact) or float32 (fast on CPU).")
    ] = "float64",
    threads: Annotated[int | None, Opt(
        "--threads", help="torch CPU threads (default: torch's choice).")] = None,
) -> None:
    """PSNR, SSIM, MS-SSIM vs the clean edits, CLIP score, FID and IS, with provenance."""
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
    settings = {
        "metrics": [m.strip() for m in metrics.split(",") if m.strip()],
        "features": features, "inception_weights": inception_weights,
        "psnr_cap": psnr_cap or None, "bootstrap": bootstrap, "set_bootstrap": set_bootstrap,
        "seed": seed, "batch_size": batch_size, "device": device, "precision": precision,
        "threads": threads,
    }
    table = table or out.with_suffix(".parquet")
    summary = evaluate(edits_dir, reference, dataset, out, table, clip, settings)
    shown = []
    for name, entry in summary["metrics"].items():
        value = entry.get("mean", entry.get("value"))
        shown.append(f"{name} {value:.4g}" if value is not None else f"{name} n/a")
    console.print(f"{out}: {', '.join(shown)}", markup=False)
