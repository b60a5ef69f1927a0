"""Input-purification defences applied to an image before it is edited.

``jpeg`` (quality), ``blur`` (Gaussian, sigma in pixels), ``noise`` (Gaussian, std in [0, 1]
pixel units, seeded per image), ``resize`` (down by ``factor`` then back up) and
``noisy_upscale`` (down by ``downscale``, Gaussian noise, then the x4 diffusion upscaler and,
if the size still differs, a bicubic resize back to the input size). Every random draw is
seeded by ``(seed, image key)``, so a defence gives the same pixels whatever the batch or order.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from ldmdata.defend.defaults import DEFAULTS, METHODS
from ldmdata.errors import LdmdataError

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}



def derive_seed(*parts) -> int:
    """A 63-bit seed from JSON-able parts (stable across runs, machines and batchings)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


@dataclass(frozen=True)
class Defence:
    """A defence and its full parameters (defaults filled in)."""

    method: str
    params: dict = field(default_factory=dict)

    @property
    def needs_upscaler(self) -> bool:
        return self.method == "noisy_upscale"

    def label(self) -> str:
        """``jpeg(quality=75)``: a short, stable name for tables and plots."""
        shown = {k: v for k, v in self.params.items() if k != "prompt" or v}
        return f"{self.method}({', '.join(f'{k}={v}' for k, v in sorted(shown.items()))})"

    def as_dict(self) -> dict:
        return {"method": self.method, "params": dict(self.params), "label": self.label()}


def make_defence(method: str, params: dict | None = None) -> Defence:
    """A validated :class:`Defence`; unknown methods, keys or bad values are one-line errors."""
    if method not in DEFAULTS:
        raise LdmdataError(f"unknown defence {method!r}; choose one of: {', '.join(METHODS)}")
    given = dict(params or {})
    unknown = sorted(set(given) - set(DEFAULTS[method]))
    if unknown:
        raise LdmdataError(
            f"defence {method}: unknown parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(DEFAULTS[method])}"
        )
    full = {**DEFAULTS[method], **given}
    _validate(method, full)
    return Defence(method, full)


def parse_defence(spec: str | dict | None) -> Defence | None:
    """``jpeg:quality=75``, ``noise:std=0.1,seed=3``, ``{method: blur, sigma: 2}`` or None."""
    if spec is None or spec == "" or spec == "none":
        return None
    if isinstance(spec, dict):
        params = dict(spec)
        method = params.pop("method", None)
        if method is None:
            raise LdmdataError(f"a defence mapping needs a method key, got {spec!r}")
        return make_defence(method, params)
    method, _, rest = spec.partition(":")
    params = {}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise LdmdataError(f"defence {spec!r}: write parameters as key=value, got {part!r}")
        params[key.strip()] = _parse_value(value.strip())
    return make_defence(method.strip(), params)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _validate(method: str, p: dict) -> None:
    def num(key, low, high=None, integer=False, low_open=False):
        value = p[key]
        kind_ok = isinstance(value, int | float) and not isinstance(value, bool)
        if integer:
            kind_ok = kind_ok and float(value).is_integer()
        in_range = kind_ok and (value > low if low_open else value >= low) and (
            high is None or value <= high)
        if not in_range:
            bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high else "")
            raise LdmdataError(
                f"defence {method}: {key} must be {'an integer ' if integer else ''}{bound}, "
                f"got {value!r}"
            )

    if method == "jpeg":
        num("quality", 1, 100, integer=True)
    elif method == "blur":
        num("sigma", 0, low_open=True)
    elif method == "noise":
        num("std", 0)
        num("seed", 0, integer=True)
    elif method == "resize":
        num("factor", 1, low_open=True)
        if p["resample"] not in RESAMPLE:
            raise LdmdataError(
                f"defence resize: resample must be one of {', '.join(RESAMPLE)}, "
                f"got {p['resample']!r}"
            )
    else:
        num("std", 0)
        num("downscale", 1, integer=True)
        num("num_inference_steps", 1, integer=True)
        num("guidance_scale", 0)
        num("noise_level", 0, 1000, integer=True)
        num("seed", 0, integer=True)
        if not isinstance(p["prompt"], str):
            raise LdmdataError(f"defence noisy_upscale: prompt must be text, got {p['prompt']!r}")


# -- the transforms ----------------------------------------------------------------------------
def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    out = Image.open(io.BytesIO(buffer.getvalue()))
    return out.convert("RGB")


def blur(image: Image.Image, sigma: float) -> Image.Image:
    """Exact Gaussian filter per channel (scipy, reflect borders, 4 sigma support)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    out = gaussian_filter(pixels, sigma=(sigma, sigma, 0), mode="reflect", truncate=4.0)
    return _to_image(out / 255)


def noise(image: Image.Image, std: float, seed: int) -> Image.Image:
    """Add N(0, std) per value in [0, 1] units from a generator seeded by ``seed``; clip."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    rng = np.random.default_rng(seed)
    return _to_image(pixels + rng.normal(0.0, std, size=pixels.shape))


def resize(image: Image.Image, factor: float, resample: str) -> Image.Image:
    width, height = image.size
    small = (max(1, round(width / factor)), max(1, round(height / factor)))
    mode = RESAMPLE[resample]
    return image.resize(small, mode).resize((width, height), mode)


def _to_image(values01: np.ndarray) -> Image.Image:
    return Image.fromarray(np.rint(np.clip(values01, 0, 1) * 255).astype(np.uint8), "RGB")


class Defender:
    """Applies one :class:`Defence` to batches of images; ``upscaler`` for ``noisy_upscale``."""

    def __init__(self, defence: Defence, upscaler=None):
        if defence.needs_upscaler and upscaler is None:
            raise LdmdataError("the noisy_upscale defence needs the x4 upscaler pipeline")
        self.defence, self.upscaler = defence, upscaler

    def __call__(self, images: list[Image.Image], keys: list[str]) -> list[Image.Image]:
        """The defended images; ``keys[i]`` (image i's id) seeds its random draws."""
        p, method = self.defence.params, self.defence.method
        if method == "jpeg":
            return [jpeg(im, p["quality"]) for im in images]
        if method == "blur":
            return [blur(im, p["sigma"]) for im in images]
        if method == "noise":
            return [noise(im, p["std"], derive_seed(p["seed"], "noise", k))
                    for im, k in zip(images, keys, strict=True)]
        if method == "resize":
            return [resize(im, p["factor"], p["resample"]) for im in images]
        return self._noisy_upscale(images, keys)

    def _noisy_upscale(self, images: list[Image.Image], keys: list[str]) -> list[Image.Image]:
        p = self.defence.params
        out: list[Image.Image] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.size, []).append(i)
        for (width, height), members in groups.items():
            small = (max(1, width // p["downscale"]), max(1, height // p["downscale"]))
            noisy = [
                noise(images[i].convert("RGB").resize(small, Image.Resampling.BICUBIC),
                      p["std"], derive_seed(p["seed"], "noise", keys[i]))
                for i in members
            ]
            gens = [torch.Generator("cpu").manual_seed(derive_seed(p["seed"], "upscale", keys[i]))
                    for i in members]
            result = self.upscaler(
                prompt=[p["prompt"]] * len(members), image=noisy,
                num_inference_steps=p["num_inference_steps"], guidance_scale=p["guidance_scale"],
                noise_level=p["noise_level"], generator=gens, output_type="pil",
            ).images
            for i, image in zip(members, result, strict=True):
                image = image.convert("RGB")
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BICUBIC)
                out[i] = image
        return out
