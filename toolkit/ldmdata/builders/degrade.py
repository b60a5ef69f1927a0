"""Low-resolution inputs for the super-resolution task.

Two degradations: ``bicubic`` (antialiased bicubic downscale) and ``realesrgan``, a seeded
re-implementation of the second-order degradation model of Real-ESRGAN (Wang et al. 2021):

    round 1: blur -> random resize -> noise -> JPEG
    round 2: blur (with a probability) -> random resize -> noise
    final:   [resize to HR/scale + sinc filter] and [JPEG] in random order

As in the paper, the JPEG step of round 2 is the one in the final step. Every parameter drawn
comes back in a JSON-serialisable dict, and the same generator state gives the same bytes.

Deviations from the reference code, for speed on one CPU core: Poisson counts come from their
normal approximation (same mean and variance) with 256 intensity levels; resizing follows
torch's F.interpolate formulas (no antialias) through sparse matrices, and a blur followed by
a resize is computed in one pass when the kernel has low rank (same result up to float
rounding); JPEG uses libjpeg through Pillow (integer quality, 4:2:0 chroma) instead of a
differentiable JPEG. Numpy, SciPy and Pillow only.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from scipy import fft, sparse, special

from ldmdata.errors import LdmdataError

DEGRADATIONS = ("bicubic", "realesrgan")
KERNEL_TYPES = (
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"
)
INTERPOLATIONS = ("area", "bilinear", "bicubic")
RESIZE_DIRECTIONS = ("up", "down", "keep")
_POISSON_LEVELS = 256.0
_SVD_TOLERANCE = 1e-6  # singular values below this fraction of the largest are dropped
_FFT_COST = 40.0  # FFT filter cost per padded pixel in sparse multiply-adds (measured)


def _lr_size(hr: Image.Image, scale: int) -> tuple[int, int]:
    if not isinstance(hr, Image.Image):
        raise LdmdataError(f"expected a PIL image, got {type(hr).__name__}")
    if hr.mode != "RGB":
        raise LdmdataError(f"expected an RGB image, got mode {hr.mode}")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise LdmdataError(f"scale must be a positive integer, got {scale!r}")
    width, height = hr.size
    if width % scale or height % scale:
        raise LdmdataError(f"image size {width}x{height} is not divisible by scale {scale}")
    return width // int(scale), height // int(scale)


def bicubic_lr(hr: Image.Image, scale: int) -> Image.Image:
    """Antialiased bicubic downscale by an integer ``scale`` (Pillow; MATLAB-like imresize)."""
    size = _lr_size(hr, scale)
    return hr.resize(size, Image.Resampling.BICUBIC, reducing_gap=None)


@dataclass(frozen=True)
class RealEsrganParams:
    """Sampling ranges of the Real-ESRGAN degradation; ``*2`` fields belong to round 2."""

    # Defaults: Real-ESRGAN (Wang et al. 2021) Sec. 3, options/train_realesrgan_x4plus.yml.
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # over KERNEL_TYPES
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)  # generalized Gaussian shape
    betap_range: tuple[float, float] = (1.0, 2.0)  # plateau shape
    resize_prob: tuple[float, ...] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma on the 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)
    second_blur_prob: float = 0.8
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, ...] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[int, int] = (30, 95)  # the final JPEG step
    final_sinc_prob: float = 0.8

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # from YAML / JSON
                object.__setattr__(self, f.name, tuple(value))
        try:
            self._validate()
        except (TypeError, ValueError) as exc:
            raise LdmdataError(f"realesrgan params: a value has the wrong type ({exc})") from None

    def _validate(self) -> None:
        for name in ("sinc_prob", "gaussian_noise_prob", "gray_noise_prob", "second_blur_prob",
                     "sinc_prob2", "gaussian_noise_prob2", "gray_noise_prob2", "final_sinc_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise LdmdataError(f"realesrgan {name} must lie in [0, 1]")
        for name, n in (("kernel_prob", len(KERNEL_TYPES)), ("kernel_prob2", len(KERNEL_TYPES)),
                        ("resize_prob", 3), ("resize_prob2", 3)):
            probs = getattr(self, name)
            if len(probs) != n or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
                raise LdmdataError(f"realesrgan {name}: need {n} non-negative numbers summing to 1")
        for name in ("blur_sigma", "betag_range", "betap_range", "resize_range", "noise_range",
                     "poisson_scale_range", "jpeg_range", "blur_sigma2", "betag_range2",
                     "betap_range2", "resize_range2", "noise_range2", "poisson_scale_range2",
                     "jpeg_range2"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise LdmdataError(f"realesrgan {name} must be a range 0 < low <= high")
        if self.resize_range[0] > 1 or self.resize_range[1] < 1:
            raise LdmdataError("realesrgan resize_range must include 1")
        if self.resize_range2[0] > 1 or self.resize_range2[1] < 1:
            raise LdmdataError("realesrgan resize_range2 must include 1")
        if self.jpeg_range2[1] > 100 or self.jpeg_range[1] > 100:
            raise LdmdataError("realesrgan JPEG quality ranges must lie in [1, 100]")
        if not self.kernel_sizes or any(k < 3 or k % 2 == 0 for k in self.kernel_sizes):
            raise LdmdataError("realesrgan kernel_sizes must be odd integers >= 3")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RealEsrganParams:
        """Build from a params.yaml section; unknown keys are an error, missing ones default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LdmdataError(f"unknown realesrgan params: {', '.join(unknown)}")
        return cls(**values)

    def _round(self, which: int) -> _Round:
        """The ranges of round 1 or 2 under common names."""
        s = "" if which == 1 else "2"
        return _Round(*(getattr(self, name + s) for name in _Round._fields))


class _Round(NamedTuple):
    """The sampling ranges of one round (the final JPEG uses round 2's ``jpeg_range``)."""

    kernel_prob: tuple[float, ...]
    sinc_prob: float
    blur_sigma: tuple[float, float]
    betag_range: tuple[float, float]
    betap_range: tuple[float, float]
    resize_prob: tuple[float, ...]
    resize_range: tuple[float, float]
    gaussian_noise_prob: float
    noise_range: tuple[float, float]
    poisson_scale_range: tuple[float, float]
    gray_noise_prob: float
    jpeg_range: tuple[int, int]


DEFAULT_REALESRGAN = RealEsrganParams()


# ---- kernels -------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _pick(rng: np.random.Generator, options: tuple, probs: tuple[float, ...] | None = None) -> Any:
    if probs is None:
        return options[int(rng.integers(len(options)))]
    return options[int(rng.choice(len(options), p=np.asarray(probs) / sum(probs)))]


def _sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """Circular low-pass (2-D sinc) kernel with cutoff ``omega_c`` (radians), sum 1."""
    ax = np.arange(size) - (size - 1) / 2
    r = np.hypot(ax[:, None], ax[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = omega_c * special.j1(omega_c * r) / (2 * np.pi * r)
    kernel[r == 0] = omega_c**2 / (4 * np.pi)
    return kernel / kernel.sum()


def _bivariate_kernel(
    size: int, sigma_x: float, sigma_y: float, angle: float, family: str, beta: float
) -> np.ndarray:
    """Rotated (generalized / plateau) Gaussian kernel, sum 1."""
    ax = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    c, s = math.cos(angle), math.sin(angle)
    u = c * xx + s * yy  # coordinates in the kernel's own axes
    v = -s * xx + c * yy
    q = (u / sigma_x) ** 2 + (v / sigma_y) ** 2  # x^T Sigma^-1 x
    if family == "gaussian":
        kernel = np.exp(-0.5 * q)
    elif family == "generalized":
        kernel = np.exp(-0.5 * q**beta)
    else:  # plateau
        kernel = 1.0 / (1.0 + q**beta)
    return kernel / kernel.sum()


def _sample_blur(
    rng: np.random.Generator, r: _Round, sizes: tuple[int, ...]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw a blur kernel as Real-ESRGAN does: sinc with ``sinc_prob``, else a mixed kernel."""
    size = int(_pick(rng, sizes))
    if rng.random() < r.sinc_prob:
        omega_c = _uniform(rng, (math.pi / 3, math.pi) if size < 13 else (math.pi / 5, math.pi))
        info = {"applied": True, "kernel": "sinc", "size": size, "omega_c": omega_c}
        return _sinc_kernel(size, omega_c), info
    kind = _pick(rng, KERNEL_TYPES, r.kernel_prob)
    sigma_x = _uniform(rng, r.blur_sigma)
    if kind.endswith("aniso"):
        sigma_y, angle = _uniform(rng, r.blur_sigma), _uniform(rng, (-math.pi, math.pi))
    else:
        sigma_y, angle = sigma_x, 0.0
    family, beta = "gaussian", 1.0
    if kind.startswith(("generalized", "plateau")):
        family = kind.split("_")[0]
        bounds = r.betag_range if family == "generalized" else r.betap_range
        beta = _uniform(rng, (bounds[0], 1.0) if rng.random() < 0.5 else (1.0, bounds[1]))
    info = {"applied": True, "kernel": kind, "size": size, "sigma_x": sigma_x, "sigma_y": sigma_y,
            "angle": angle, "beta": beta}
    return _bivariate_kernel(size, sigma_x, sigma_y, angle, family, beta), info


def _filter(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Filter an HxWx3 float32 image with a point-symmetric kernel, reflect padding, via FFT."""
    height, width = img.shape[:2]
    pad = kernel.shape[0] // 2
    n0 = fft.next_fast_len(height + 2 * pad, real=True)
    n1 = fft.next_fast_len(width + 2 * pad, real=True)
    # Reflect-pad straight to the FFT size: the circular wrap-around then never reaches the
    # kept window [pad, pad + size).
    padded = np.pad(
        img, ((pad, n0 - height - pad), (pad, n1 - width - pad), (0, 0)), mode="reflect"
    )
    # A point-symmetric kernel centred on the origin has a real DFT: two small cosine/sine
    # matrix products instead of an FFT of a zero-padded kernel.
    taps = np.arange(-pad, pad + 1)
    phase0 = 2 * np.pi * np.outer(np.arange(n0), taps) / n0
    phase1 = 2 * np.pi * np.outer(taps, np.arange(n1 // 2 + 1)) / n1
    spectrum = np.cos(phase0) @ kernel @ np.cos(phase1) - np.sin(phase0) @ kernel @ np.sin(phase1)
    product = fft.rfft2(padded, axes=(0, 1)) * spectrum.astype(np.float32)[:, :, None]
    out = fft.irfft2(product, s=(n0, n1), axes=(0, 1))
    return out[pad:pad + height, pad:pad + width]


# ---- resize (torch F.interpolate semantics, align_corners=False, no antialias) --------------


def _csr(n_cols: int, counts: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> sparse.csr_array:
    """A float32 CSR matrix from row-major entries, ``counts[i]`` of them in row i (repeated
    column indices are allowed and add up)."""
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sparse.csr_array(
        (vals.astype(np.float32), cols.astype(np.int32), indptr.astype(np.int32)),
        shape=(len(counts), n_cols),
    )


def _resize_matrix(n_in: int, n_out: int, mode: str) -> sparse.csr_array:
    """The n_out x n_in matrix of a 1-D resize as torch's F.interpolate computes it."""
    ratio = n_in / n_out
    out_idx = np.arange(n_out)
    if mode == "area":  # adaptive average pooling
        start = (out_idx * n_in) // n_out
        counts = -((-(out_idx + 1) * n_in) // n_out) - start
        first = np.cumsum(counts) - counts  # where each output's run starts
        cols = np.repeat(start - first, counts) + np.arange(counts.sum())
        return _csr(n_in, counts, cols, np.repeat(1.0 / counts, counts))
    if mode == "bilinear":
        src = np.maximum((out_idx + 0.5) * ratio - 0.5, 0.0)
        i0 = np.floor(src).astype(np.int64)
        t = src - i0
        cols = np.stack([i0, np.minimum(i0 + 1, n_in - 1)], axis=1)
        weights = np.stack([1 - t, t], axis=1)
    else:  # bicubic, Keys a = -0.75, edge indices clamped
        src = (out_idx + 0.5) * ratio - 0.5
        i0 = np.floor(src).astype(np.int64)
        t = src - i0
        a = -0.75
        dist = np.stack([t + 1, t, 1 - t, 2 - t], axis=1)
        near = ((a + 2) * dist - (a + 3)) * dist**2 + 1
        far = ((a * dist - 5 * a) * dist + 8 * a) * dist - 4 * a
        weights = np.where(dist <= 1, near, far)
        cols = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    counts = np.full(n_out, cols.shape[1])
    return _csr(n_in, counts, cols.ravel(), weights.ravel())


def _reflect_band(n: int, taps: np.ndarray) -> sparse.csr_array:
    """The n x n matrix of a 1-D correlation with ``taps`` (odd length) under reflect padding."""
    pad = len(taps) // 2
    src = np.arange(n)[:, None] + np.arange(-pad, pad + 1)[None, :]
    if n == 1:
        src = np.zeros_like(src)
    else:
        period = 2 * (n - 1)
        src = src % period
        src = np.where(src >= n, period - src, src)
    return _csr(n, np.full(n, len(taps)), src.ravel(), np.tile(taps, n))


def _separable(
    img: np.ndarray, pairs: list[tuple[sparse.csr_array, sparse.csr_array]]
) -> np.ndarray:
    """Sum over (rows, cols) matrix pairs of rows @ image @ cols.T, channel by channel."""
    height, width, channels = img.shape
    new_h, new_w = pairs[0][0].shape[0], pairs[0][1].shape[0]
    flat = img.reshape(height, width * channels)
    total = np.zeros((new_w, channels * new_h), np.float32)
    for rows, cols in pairs:
        tall = rows @ flat
        # The 2-D transposes are much cheaper than moving the 3-value pixels of HxWx3 arrays.
        total += cols @ np.ascontiguousarray(tall.T).reshape(width, channels * new_h)
    return np.ascontiguousarray(total.reshape(new_w * channels, new_h).T).reshape(
        new_h, new_w, channels
    )


def _resize(img: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize an HxWx3 float32 image to ``size`` = (width, height)."""
    return _blur_resize(img, None, size, mode)


def _blur_resize(
    img: np.ndarray, kernel: np.ndarray | None, size: tuple[int, int], mode: str
) -> np.ndarray:
    """Filter with ``kernel`` (if any), then resize to ``size`` = (width, height).

    Both steps are linear, so a kernel of low rank k = sum(u_i v_i^T) folds into the resize
    matrices: out = sum_i (R_y B(u_i)) img (R_x B(v_i))^T, computed only at the output pixels.
    High-rank kernels go through the FFT filter instead; the cheaper way is taken.
    """
    height, width, channels = img.shape
    new_w, new_h = size
    same = (new_w, new_h) == (width, height)
    if same:
        rows = sparse.eye_array(height, dtype=np.float32, format="csr")
        cols = sparse.eye_array(width, dtype=np.float32, format="csr")
    else:
        rows, cols = _resize_matrix(height, new_h, mode), _resize_matrix(width, new_w, mode)
    if kernel is None:
        return img if same else _separable(img, [(rows, cols)])
    u, singular, vt = np.linalg.svd(kernel)
    rank = int(np.count_nonzero(singular > singular[0] * _SVD_TOLERANCE))
    band = kernel.shape[0] + rows.nnz // new_h
    separable_cost = rank * band * channels * (new_h * width + new_w * new_h)
    pad = kernel.shape[0] // 2
    padded = [fft.next_fast_len(n + 2 * pad, real=True) for n in (height, width)]
    fft_cost = _FFT_COST * channels * padded[0] * padded[1]
    if separable_cost > fft_cost:
        blurred = _filter(img, kernel)
        return blurred if same else _separable(blurred, [(rows, cols)])
    pairs = [
        (rows @ _reflect_band(height, u[:, i] * singular[i]), cols @ _reflect_band(width, vt[i]))
        for i in range(rank)
    ]
    return _separable(img, pairs)


def _draw_resize(
    rng: np.random.Generator, r: _Round, base: tuple[int, int]
) -> tuple[tuple[int, int], str, dict[str, Any]]:
    """Draw a random resize of ``base`` = (width, height): direction, factor, interpolation."""
    direction = _pick(rng, RESIZE_DIRECTIONS, r.resize_prob)
    if direction == "keep":
        factor = 1.0
    elif direction == "up":
        factor = _uniform(rng, (1.0, r.resize_range[1]))
    else:
        factor = _uniform(rng, (r.resize_range[0], 1.0))
    mode = _pick(rng, INTERPOLATIONS)
    size = (max(1, int(base[0] * factor)), max(1, int(base[1] * factor)))
    info = {"direction": direction, "factor": factor, "interpolation": mode, "size": list(size)}
    return size, mode, info


# ---- noise and JPEG -------------------------------------------------------------------------


def _poisson_noise(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """``strength`` x shot noise of the image quantised to 8 bits, with 256 levels as in
    Real-ESRGAN's 8-bit case; counts from the normal approximation of the Poisson law (same
    mean and variance), rounded and never negative."""
    lam = np.rint(np.clip(img, 0, 1) * 255)
    lam *= np.float32(_POISSON_LEVELS / 255)
    noise = rng.standard_normal(lam.shape, dtype=np.float32)
    noise *= np.sqrt(lam)
    noise += lam
    np.rint(noise, out=noise)
    np.maximum(noise, 0, out=noise)
    noise -= lam
    noise *= np.float32(strength / _POISSON_LEVELS)
    return noise


def _add_noise(
    img: np.ndarray, rng: np.random.Generator, r: _Round
) -> tuple[np.ndarray, dict[str, Any]]:
    """Gaussian or Poisson noise, in colour or the same for all channels (gray)."""
    if rng.random() < r.gaussian_noise_prob:
        sigma = _uniform(rng, r.noise_range)
        gray = bool(rng.random() < r.gray_noise_prob)
        noise = rng.standard_normal(img.shape[:2] + (1 if gray else 3,), dtype=np.float32)
        noise *= np.float32(sigma / 255)
        info = {"type": "gaussian", "sigma": sigma, "gray": gray}
    else:
        strength = _uniform(rng, r.poisson_scale_range)
        gray = bool(rng.random() < r.gray_noise_prob)
        if gray:
            luma = img @ np.array([0.299, 0.587, 0.114], np.float32)
            noise = _poisson_noise(luma, rng, strength)[..., None]
        else:
            noise = _poisson_noise(img, rng, strength)
        info = {"type": "poisson", "scale": strength, "gray": gray}
    out = img + noise
    return np.clip(out, 0, 1, out=out), info


def _to_uint8(img: np.ndarray) -> np.ndarray:
    scaled = img * np.float32(255)
    np.rint(scaled, out=scaled)
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(img)).save(buffer, format="JPEG", quality=quality, subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float32) / np.float32(255)


def _sample_quality(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(int(bounds[0]), int(bounds[1]), endpoint=True))


# ---- the pipeline ---------------------------------------------------------------------------


def realesrgan_lr(
    hr: Image.Image,
    scale: int,
    rng: np.random.Generator,
    params: RealEsrganParams = DEFAULT_REALESRGAN,
) -> tuple[Image.Image, dict[str, Any]]:
    """Degrade ``hr`` to exactly (W/scale, H/scale) with Real-ESRGAN's second-order model.

    Returns the LR image and every parameter drawn (plain JSON types). The result depends only
    on the image, ``scale``, ``params`` and the state of ``rng``.
    """
    lr_w, lr_h = _lr_size(hr, scale)
    if not isinstance(rng, np.random.Generator):
        raise LdmdataError("realesrgan_lr needs a numpy.random.Generator")
    img = np.asarray(hr, dtype=np.float32) / np.float32(255)
    first, second = params._round(1), params._round(2)

    kernel, blur = _sample_blur(rng, first, params.kernel_sizes)
    size, mode, resize = _draw_resize(rng, first, (hr.width, hr.height))
    img = _blur_resize(img, kernel, size, mode)
    img, noise = _add_noise(img, rng, first)
    quality = _sample_quality(rng, first.jpeg_range)
    img = _jpeg(img, quality)
    round1 = {"blur": blur, "resize": resize, "noise": noise, "jpeg_quality": quality}

    blur, kernel = {"applied": False}, None
    if rng.random() < params.second_blur_prob:
        kernel, blur = _sample_blur(rng, second, params.kernel_sizes)
    size, mode, resize = _draw_resize(rng, second, (lr_w, lr_h))
    img = _blur_resize(img, kernel, size, mode)
    img, noise = _add_noise(img, rng, second)
    round2 = {"blur": blur, "resize": resize, "noise": noise}

    order = "resize_sinc_then_jpeg" if rng.random() < 0.5 else "jpeg_then_resize_sinc"
    mode = _pick(rng, INTERPOLATIONS)
    sinc: dict[str, Any] = {"applied": False}
    sinc_kernel = None
    if rng.random() < params.final_sinc_prob:
        size = int(_pick(rng, params.kernel_sizes))
        omega_c = _uniform(rng, (math.pi / 3, math.pi))
        sinc_kernel = _sinc_kernel(size, omega_c)
        sinc = {"applied": True, "size": size, "omega_c": omega_c}
    quality = _sample_quality(rng, second.jpeg_range)
    final = {"order": order, "interpolation": mode, "sinc": sinc, "jpeg_quality": quality}

    if order == "jpeg_then_resize_sinc":
        img = _jpeg(img, quality)
    img = _resize(img, (lr_w, lr_h), mode)
    if sinc_kernel is not None:
        img = _blur_resize(img, sinc_kernel, (lr_w, lr_h), mode)
    if order == "resize_sinc_then_jpeg":
        img = _jpeg(img, quality)
    lr = Image.fromarray(_to_uint8(img))
    drawn = {"scale": int(scale), "hr_size": [hr.width, hr.height], "lr_size": [lr_w, lr_h],
             "round1": round1, "round2": round2, "final": final}
    return lr, drawn
