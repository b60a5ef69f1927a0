"""The pixel-only defences: JPEG, Gaussian blur, Gaussian noise and down/up resizing."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from ldmdata.purify.spec import RESAMPLE


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    out = Image.open(io.BytesIO(buffer.getvalue()))
    return out.convert("RGB")


def blur(image: Image.Image, sigma: float) -> Image.Image:
    """Exact Gaussian filter per channel (scipy, reflect borders, 4 sigma support)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    out = gaussian_filter(pixels, sigma=(sigma, sigma, 0), mode="reflect", truncate=4.0)
    return to_image(out / 255)


def noise(image: Image.Image, std: float, seed: int) -> Image.Image:
    """Add N(0, std) per value in [0, 1] units from a generator seeded by ``seed``; clip."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    rng = np.random.default_rng(seed)
    return to_image(pixels + rng.normal(0.0, std, size=pixels.shape))


def resize(image: Image.Image, factor: float, resample: str) -> Image.Image:
    width, height = image.size
    small = (max(1, round(width / factor)), max(1, round(height / factor)))
    mode = RESAMPLE[resample]
    return image.resize(small, mode).resize((width, height), mode)


def to_image(values01: np.ndarray) -> Image.Image:
    """An 8-bit RGB image from ``H x W x 3`` values in [0, 1] (clipped, rounded)."""
    return Image.fromarray(np.rint(np.clip(values01, 0, 1) * 255).astype(np.uint8), "RGB")
