"""Robustness metrics of edits: torchmetrics PSNR, SSIM, MS-SSIM, CLIP score, FID and IS.

The names below load torch and torchmetrics on first use, so ``ldmdata.metrics.names`` (what
the report needs) stays light.
"""

from ldmdata.lazy import lazy_exports
from ldmdata.metrics.names import HIGHER_IS_BETTER, METRICS

_LAZY = {
    "DEFAULTS": "ldmdata.metrics.evaluation",
    "evaluate": "ldmdata.metrics.evaluation",
    "evaluate_settings": "ldmdata.metrics.evaluation",
    "model_label": "ldmdata.metrics.evaluation",
    "bootstrap_mean": "ldmdata.metrics.functional",
    "ms_ssim": "ldmdata.metrics.functional",
    "ms_ssim_betas": "ldmdata.metrics.functional",
    "psnr": "ldmdata.metrics.functional",
    "ssim": "ldmdata.metrics.functional",
}

__all__ = ["HIGHER_IS_BETTER", "METRICS", *_LAZY]
__getattr__ = lazy_exports(__name__, _LAZY)
