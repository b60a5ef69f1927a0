"""The two evaluation protocols: how images are prepared and how pairs are compared.

- ``ldmdata`` (default, correct): the stored PNG edits as they are, [0, 1] floats; PSNR and SSIM
  equal scikit-image's references per pair (see :mod:`ldmdata.metrics.functional`); every
  headline number is the mean of per-pair values.
- ``study``: what the study's released evaluation code computed (reference/seed-paper.md,
  "Details that change numbers"). Each edit (adversarial and clean reference alike) is JPEG-encoded
  at PIL's default quality (75) and decoded, as the study stored its edits under ``.jpg`` names;
  every image (edits and source images) is resized to 512 x 512 with PIL's default ``resize``
  filter (bicubic); PSNR is one value of the MSE pooled over the stack (torchmetrics'
  ``PeakSignalNoiseRatio(data_range=1.0)``); SSIM and MS-SSIM are fed 0-255 floats with
  ``data_range=1.0`` and torchmetrics' default window, sigma and ``relu`` (so their stabilising
  constants are ~zero), and ignore ``ssim_sigma`` and ``ms_ssim_normalize``.
"""

from __future__ import annotations

import io

import torch
from PIL import Image

from ldmdata.errors import LdmdataError
from ldmdata.metrics import functional as MF
from ldmdata.metrics.features import as_uint8

STUDY_SIZE = (512, 512)
PAIR_METRICS = ("psnr", "ssim", "ms_ssim")
STUDY_SSIM = (1.5, "relu")  # torchmetrics' default sigma and MS-SSIM normalize (the study's)


def study_image(image: Image.Image, edited: bool) -> Image.Image:
    """An image as the study measured it: edits through JPEG (PIL defaults), all to 512 px."""
    image = image.convert("RGB")
    if edited:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG")  # PIL's default quality (75) and subsampling
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    return image.resize(STUDY_SIZE)  # PIL's default filter (bicubic)


def prepare(images: list[Image.Image], protocol: str, edited: bool) -> list[Image.Image]:
    """``images`` as ``protocol`` measures them (``ldmdata``: unchanged)."""
    if protocol == "ldmdata":
        return images
    return [study_image(image, edited) for image in images]


def pair_metrics(tests: list[Image.Image], refs: list[Image.Image], s: dict,
                 dtype: torch.dtype, device: torch.device) -> dict:
    """The wanted per-pair columns (``mse`` with PSNR), batched over same-size pairs."""
    wanted = [m for m in PAIR_METRICS if m in s["metrics"]]
    columns = (["mse"] if "psnr" in wanted else []) + wanted \
        + (["ms_ssim_scales"] if "ms_ssim" in wanted else [])
    values: dict[str, list] = {name: [None] * len(tests) for name in columns}
    groups: dict[tuple, list[int]] = {}
    for i, (a, b) in enumerate(zip(tests, refs, strict=True)):
        if a.size != b.size:
            raise LdmdataError(f"an edit is {a.size} but its reference edit is {b.size}")
        groups.setdefault(a.size, []).append(i)
    for (width, height), members in groups.items():
        x = as_uint8([tests[i] for i in members]).to(device=device, dtype=dtype) / 255
        y = as_uint8([refs[i] for i in members]).to(device=device, dtype=dtype) / 255
        results = _compare(x, y, wanted, s)
        if "ms_ssim" in wanted:
            sigma, _ = ssim_options(s)
            results["ms_ssim_scales"] = [len(MF.ms_ssim_betas(height, width, sigma))] \
                * len(members)
        for name, column in results.items():
            for i, v in zip(members, column, strict=True):
                values[name][i] = v
    return values


def ssim_options(s: dict) -> tuple[float, str | None]:
    """SSIM's sigma and MS-SSIM's normalisation under ``s['protocol']``."""
    if s["protocol"] == "study":
        return STUDY_SSIM
    return s["ssim_sigma"], s["ms_ssim_normalize"]


def _compare(x: torch.Tensor, y: torch.Tensor, wanted: list[str], s: dict) -> dict:
    """Per-pair values of [0, 1] images ``x`` and ``y`` under ``s['protocol']``."""
    out = {}
    if "psnr" in wanted:
        out["mse"] = MF.mse(x, y).tolist()
        out["psnr"] = MF.psnr(x, y, s["psnr_cap"]).tolist()
    if s["protocol"] == "study":
        x, y = x * 255, y * 255  # the study's 0-255 floats, still with data_range=1.0
    sigma, normalize = ssim_options(s)
    if "ssim" in wanted:
        out["ssim"] = MF.ssim(x, y, sigma).tolist()
    if "ms_ssim" in wanted:
        out["ms_ssim"] = MF.ms_ssim(x, y, sigma, normalize).tolist()
    return out
