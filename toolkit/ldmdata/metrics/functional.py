"""Per-pair image metrics: PSNR, SSIM and MS-SSIM of ``B x 3 x H x W`` float tensors.

Both evaluation protocols use this core; ``ldmdata`` gives [0, 1] images, ``study`` gives
0-255 floats with the same ``data_range=1`` (the study's mistake, kept on purpose there).
Give float64 for SSIM 1 of an image against itself: float32 leaves ~1e-4 of rounding in the
variance terms (but float64 convolutions are ~10x slower on a CPU).

- PSNR, ``10 log10(1 / MSE)``, equals scikit-image's ``peak_signal_noise_ratio`` per image
  (torchmetrics' agrees to ~1e-6 dB). Identical images give ``inf``; :func:`psnr` caps it at
  ``cap`` dB (default 100 dB, reached when the MSE is below 1e-10). ``cap=None`` keeps
  ``inf`` (the summaries then leave it out and count it).
- SSIM equals scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)``: torchmetrics' SSIM map (Gaussian window of
  ``2 * int(3.5 * sigma + 0.5) + 1`` px; torchmetrics ignores ``kernel_size`` for Gaussian
  windows) averaged after cropping ``(window - 1) // 2`` px at every border, as scikit-image
  does. torchmetrics itself averages the whole map, border windows over reflect-padded pixels
  included, since Lightning-AI/torchmetrics#2721 (Sept 2024); before it (the torchmetrics of the
  study's code, 2023) it cropped like scikit-image. Cropping here makes the number independent
  of the installed torchmetrics version, equal to the reference, and equal to what the study's
  code computed.
- MS-SSIM: the same cropped maps at each scale (contrast-structure terms at the first scales,
  SSIM at the last, ``relu`` of each by default), i.e. torchmetrics' MS-SSIM as of the study.
  It needs images of at least ~176 px for its 5 standard scales. Smaller images use the most
  scales torchmetrics accepts for their size, with the first standard weights renormalised to
  sum to 1; :func:`ms_ssim_betas` says which, and the summary records it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from ldmdata.metrics.settings import DEFAULT_PSNR_CAP

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def mse(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image."""
    return (preds - target).pow(2).flatten(1).mean(1)


def psnr(preds: torch.Tensor, target: torch.Tensor, cap: float | None = DEFAULT_PSNR_CAP
         ) -> torch.Tensor:
    """PSNR per image in dB (data range 1), at most ``cap`` (``None``: identical gives inf)."""
    values = -10 * torch.log10(mse(preds, target))
    return values if cap is None else values.clamp(max=cap)


def ssim_window(sigma: float) -> int:
    """The Gaussian window's side: truncated at 3.5 sigma (torchmetrics and scikit-image)."""
    return 2 * int(3.5 * sigma + 0.5) + 1


def _cropped_mean(image_map: torch.Tensor, sigma: float) -> torch.Tensor:
    pad = (ssim_window(sigma) - 1) // 2
    return image_map[..., pad:-pad, pad:-pad].flatten(1).mean(1)


def ssim(preds: torch.Tensor, target: torch.Tensor, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """SSIM per image: the mean of the SSIM map without its padded border (scikit-image's)."""
    _, image_map = structural_similarity_index_measure(
        preds, target, sigma=sigma, data_range=data_range, reduction="none",
        return_full_image=True)
    return _cropped_mean(image_map, sigma)


def _contrast_structure(preds, target, sigma, data_range) -> torch.Tensor:
    # torchmetrics crops this map's border itself (every version)
    _, cs = structural_similarity_index_measure(
        preds, target, sigma=sigma, data_range=data_range, reduction="none",
        return_contrast_sensitivity=True)
    return cs


def ms_ssim_betas(height: int, width: int, sigma: float = 1.5) -> tuple[float, ...]:
    """The standard scale weights, cut to the scales torchmetrics allows for this size."""
    side, window = min(height, width), ssim_window(sigma)
    for scales in range(len(MS_SSIM_BETAS), 0, -1):
        if side >= 2**scales and side // max(1, scales - 1) ** 2 > window - 1:
            betas = MS_SSIM_BETAS[:scales]
            return tuple(b / sum(betas) for b in betas) if scales < len(MS_SSIM_BETAS) else betas
    raise ValueError(f"images of {width}x{height} are too small for MS-SSIM "
                     f"with a {window} px window")


def ms_ssim(preds: torch.Tensor, target: torch.Tensor, sigma: float = 1.5,
            normalize: str | None = "relu", data_range: float = 1.0) -> torch.Tensor:
    """MS-SSIM per image, with :func:`ms_ssim_betas` for the image size."""
    betas = ms_ssim_betas(preds.shape[-2], preds.shape[-1], sigma)
    terms = []
    for scale in range(len(betas)):
        if scale < len(betas) - 1:
            terms.append(_contrast_structure(preds, target, sigma, data_range))
            preds, target = F.avg_pool2d(preds, 2), F.avg_pool2d(target, 2)
        else:
            terms.append(ssim(preds, target, sigma, data_range))
    stack = torch.stack(terms)
    if normalize == "relu":
        stack = stack.relu()
    elif normalize == "simple":
        stack = (stack + 1) / 2
    weights = torch.tensor(betas, dtype=stack.dtype, device=stack.device).view(-1, 1)
    return (stack**weights).prod(0)
