"""Robustness metrics of edits: torchmetrics PSNR, SSIM, MS-SSIM, CLIP score, FID and IS."""

from ldmdata.metrics.evaluate import (
    DEFAULTS,
    HIGHER_IS_BETTER,
    METRICS,
    evaluate,
    evaluate_settings,
    model_label,
)
from ldmdata.metrics.functional import bootstrap_mean, ms_ssim, ms_ssim_betas, psnr, ssim

__all__ = [
    "DEFAULTS",
    "HIGHER_IS_BETTER",
    "METRICS",
    "bootstrap_mean",
    "evaluate",
    "evaluate_settings",
    "model_label",
    "ms_ssim",
    "ms_ssim_betas",
    "psnr",
    "ssim",
]
