"""Robustness metrics of edits: PSNR, SSIM, MS-SSIM, CLIP score, FID and IS, under the
``ldmdata`` or the study's protocol, with cluster-bootstrap intervals over source images.

The names below load torch and torchmetrics on first use, so ``ldmdata.metrics.names`` (what
the report needs) stays light.
"""

from ldmdata.lazy import lazy_exports
from ldmdata.metrics.names import HIGHER_IS_BETTER, METRICS

_LAZY = {
    "DEFAULTS": "ldmdata.metrics.settings",
    "evaluate": "ldmdata.metrics.evaluation",
    "evaluate_settings": "ldmdata.metrics.settings",
    "model_label": "ldmdata.metrics.evaluation",
    "PROTOCOLS": "ldmdata.metrics.settings",
    "cluster_mean": "ldmdata.metrics.intervals",
    "pooled_psnr": "ldmdata.metrics.intervals",
    "ms_ssim": "ldmdata.metrics.functional",
    "ms_ssim_betas": "ldmdata.metrics.functional",
    "psnr": "ldmdata.metrics.functional",
    "ssim": "ldmdata.metrics.functional",
}

__all__ = ["HIGHER_IS_BETTER", "METRICS", *_LAZY]
__getattr__ = lazy_exports(__name__, _LAZY)
