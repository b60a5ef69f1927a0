"""Defence specs: every purifier's parameters, defaults, validation and the model it needs.

A spec is ``jpeg:quality=75``, ``noise:std=0.1,seed=3``, a mapping ``{method: blur, sigma: 2}``
or ``none``. Each method's defaults, with their sources, are in :data:`DEFAULTS`; a
:class:`Defence` holds a method with every parameter filled in. Methods that run a diffusers
pipeline name its editing kind in :data:`MODEL_KINDS` (the x4 upscaler, or the Stable Diffusion
img2img model, whose VAE is also what IMPRESS uses).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ldmdata.errors import LdmdataError

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
CLOSENESS = ("auto", "lpips", "l2")

# Every defence's parameters and their defaults.
DEFAULTS: dict[str, dict] = {
    "jpeg": {"quality": 75},
    "blur": {"sigma": 1.0},
    "noise": {"std": 0.05, "seed": 0},
    "resize": {"factor": 2.0, "resample": "bicubic"},
    "noisy_upscale": {
        "std": 0.05, "downscale": 4, "prompt": "", "num_inference_steps": 20,
        "guidance_scale": 7.5, "noise_level": 20, "seed": 0,
    },
    # DiffPure (Nie et al., ICML 2022) with SD img2img: t* = 0.1, the GrIDPure repository's
    # DiffPure setting (pure_steps 100 of 1000); 50 steps is diffusers' default schedule.
    # An empty prompt gives classifier-free guidance nothing to push toward: guidance 1 (off).
    "diffpure": {"strength": 0.1, "num_inference_steps": 50, "guidance_scale": 1.0, "seed": 0},
    # GrIDPure (Zhao et al., CVPR 2024; ZhengyueZhao/GrIDPure README): 256 px grids at stride
    # 128, pure_steps 10 (t* = 0.01), 20 iterations, gamma 0.1. 100 steps make t* = 0.01 one
    # denoising step.
    "gridpure": {"grid": 256, "stride": 128, "iterations": 20, "gamma": 0.1, "strength": 0.01,
                 "num_inference_steps": 100, "guidance_scale": 1.0, "seed": 0},
    # IMPRESS (Cao et al., NeurIPS 2023; AAAAAAsuka/Impress scripts: pur_iters 3000, pur_lr 0.01,
    # pur_alpha 0.1, pur_eps 0.1, pur_noise 0.1). closeness: LPIPS(VGG) when its weights are
    # on this machine (``auto``), else a squared-error term (see ``ldmdata.purify.impress``).
    "impress": {"iterations": 3000, "lr": 0.01, "weight": 0.1, "bound": 0.1, "init_noise": 0.1,
                "closeness": "auto", "seed": 0},
}
METHODS = tuple(DEFAULTS)
# The editing kind (``ldmdata.models.editors.ROLES``) of the pipeline a defence runs.
MODEL_KINDS = {"noisy_upscale": "upscale", "diffpure": "img2img", "gridpure": "img2img",
               "impress": "img2img"}
MODEL_NAMES = {"upscale": "x4 upscaler", "img2img": "Stable Diffusion img2img"}


@dataclass(frozen=True)
class Defence:
    """A defence and its full parameters (defaults filled in)."""

    method: str
    params: dict = field(default_factory=dict)

    @property
    def model_kind(self) -> str | None:
        """The editing kind of the pipeline this defence runs (None: pixels only)."""
        return MODEL_KINDS.get(self.method)

    @property
    def min_side(self) -> int | None:
        """The smallest image side this defence takes (GrIDPure's grid), None: any."""
        return self.params["grid"] if self.method == "gridpure" else None

    def check_size(self, width: int, height: int) -> None:
        """One clear line when an image cannot take this defence."""
        if self.min_side is not None and min(width, height) < self.min_side:
            raise LdmdataError(
                f"defence {self.method}: a {width}x{height} image is smaller than its "
                f"{self.min_side} px grid; use a smaller grid"
            )

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
    if method == "impress":
        full["closeness"] = _closeness(full["closeness"])
    return Defence(method, full)


def split_spec(spec: str) -> tuple[str, dict]:
    """``noise:std=0.1,seed=3`` -> ``("noise", {"std": 0.1, "seed": 3})`` (values as JSON)."""
    method, _, rest = spec.partition(":")
    params = {}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise LdmdataError(f"defence {spec!r}: write parameters as key=value, got {part!r}")
        params[key.strip()] = _parse_value(value.strip())
    return method.strip(), params


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
    return make_defence(*split_spec(spec))


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def lpips_weights() -> Path:
    """Where torchvision keeps the VGG16 weights that LPIPS(VGG) needs (maybe absent)."""
    import torch
    from torchvision.models import VGG16_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG16_Weights.DEFAULT.url).name


def _closeness(choice: str) -> str:
    """``auto`` becomes what is used: ``lpips`` when its weights are here, else ``l2``."""
    found = lpips_weights().is_file()
    if choice == "lpips" and not found:
        raise LdmdataError(
            f"defence impress: closeness=lpips needs the VGG16 weights at {lpips_weights()} "
            "(offline); use closeness=l2 or auto"
        )
    if choice == "auto":
        return "lpips" if found else "l2"
    return choice


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

    def denoising():
        num("strength", 0, 1, low_open=True)
        num("num_inference_steps", 1, integer=True)
        num("guidance_scale", 0)
        num("seed", 0, integer=True)
        if int(p["num_inference_steps"] * p["strength"]) < 1:
            raise LdmdataError(
                f"defence {method}: strength {p['strength']} x num_inference_steps "
                f"{p['num_inference_steps']} leaves no denoising step; raise either"
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
    elif method == "diffpure":
        denoising()
    elif method == "gridpure":
        denoising()
        num("grid", 8, integer=True)
        if p["grid"] % 8:
            raise LdmdataError(f"defence gridpure: grid must be a multiple of 8, got {p['grid']}")
        num("stride", 1, p["grid"], integer=True)
        num("iterations", 1, integer=True)
        num("gamma", 0, 1)
    elif method == "impress":
        num("iterations", 1, integer=True)
        num("lr", 0, low_open=True)
        num("weight", 0)
        num("bound", 0)
        num("init_noise", 0)
        num("seed", 0, integer=True)
        if p["closeness"] not in CLOSENESS:
            raise LdmdataError(
                f"defence impress: closeness must be one of {', '.join(CLOSENESS)}, "
                f"got {p['closeness']!r}"
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
