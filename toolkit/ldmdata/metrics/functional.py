"""Per-pair image metrics (torchmetrics' functional core) and seeded bootstrap intervals.

Images are ``B x 3 x H x W`` float tensors in [0, 1] (data range 1.0, as the study). Give
float64 for SSIM 1 of an image against itself: float32 leaves ~1e-4 of rounding in torchmetrics'
variance terms (but float64 convolutions are ~10x slower on a CPU).

- PSNR of identical images is infinite; :func:`psnr` caps it at ``cap`` dB (default 100 dB,
  reached when the MSE is below 1e-10: identical images, or 8-bit images that differ by one
  level in fewer than about 1 of every 150,000 values). ``cap=None`` keeps ``inf``.
- MS-SSIM needs images of at least ~176 px for its 5 standard scales. Smaller images use the
  most scales torchmetrics accepts for their size, with the first standard weights renormalised
  to sum to 1; :func:`ms_ssim_betas` says which, and the summary records it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DEFAULT_PSNR_CAP = 100.0


def psnr(preds: torch.Tensor, target: torch.Tensor, cap: float | None = DEFAULT_PSNR_CAP
         ) -> torch.Tensor:
    """PSNR per image in dB, at most ``cap`` (``None``: identical images give ``inf``)."""
    values = peak_signal_noise_ratio(preds, target, data_range=1.0,
                                     reduction="none",
                                     dim=(1, 2, 3))
    return values if cap is None else values.clamp(max=cap)


def ssim(preds: torch.Tensor, target: torch.Tensor, kernel_size: int = 11, sigma: float = 1.5
         ) -> torch.Tensor:
    """SSIM per image (Gaussian window)."""
    return structural_similarity_index_measure(
        preds, target, data_range=1.0, kernel_size=kernel_size, sigma=sigma,
        reduction="none",
    )


def ms_ssim_betas(height: int, width: int, kernel_size: int = 11) -> tuple[float, ...]:
    """The standard scale weights, cut to the scales an image of this size allows."""
    side = min(height, width)
    for scales in range(len(MS_SSIM_BETAS), 0, -1):
        if side >= 2**scales and side // max(1, scales - 1) ** 2 > kernel_size - 1:
            betas = MS_SSIM_BETAS[:scales]
            return tuple(b / sum(betas) for b in betas) if scales < len(MS_SSIM_BETAS) else betas
    raise ValueError(f"images of {width}x{height} are too small for MS-SSIM "
                     f"with kernel {kernel_size}")


def ms_ssim(preds: torch.Tensor, target: torch.Tensor, kernel_size: int = 11,
            sigma: float = 1.5, normalize: str | None = "relu") -> torch.Tensor:
    """MS-SSIM per image, with :func:`ms_ssim_betas` for the image size."""
    betas = ms_ssim_betas(preds.shape[-2], preds.shape[-1], kernel_size)
    return multiscale_structural_similarity_index_measure(
        preds, target, data_range=1.0, kernel_size=kernel_size, sigma=sigma,
        betas=betas, normalize=normalize, reduction="none",
    )


def bootstrap_mean(values, n_boot: int, seed: int, confidence: float = 0.95) -> dict:
    """Mean of the finite ``values`` and a percentile bootstrap interval of the mean.

    ``n`` counts the values used; ``n_dropped`` the NaNs left out. No values: all None.
    """
    data = np.asarray(values, dtype=np.float64)
    finite = data[~np.isnan(data)]
    result = {"mean": None, "ci_low": None, "ci_high": None, "n": int(finite.size),
              "n_dropped": int(data.size - finite.size)}
    if finite.size == 0:
        return result
    result["mean"] = float(finite.mean())
    if n_boot > 0 and finite.size > 1:
        rng = np.random.default_rng(seed)
        means = finite[rng.integers(0, finite.size, size=(n_boot, finite.size))].mean(axis=1)
        low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
        result["ci_low"], result["ci_high"] = float(low), float(high)
    return result


def percentile_interval(samples, confidence: float = 0.95) -> tuple[float | None, float | None]:
    data = np.asarray([s for s in samples if s is not None and not math.isnan(s)], np.float64)
    if data.size < 2:
        return None, None
    low, high = np.quantile(data, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)
