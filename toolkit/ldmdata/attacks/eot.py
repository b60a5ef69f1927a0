"""Attacks that see the defence: expectation over transformation (EOT) and BPDA.

``--eot jpeg:quality=75,blur:sigma=1`` makes every gradient step average the objective over
``eot_samples`` draws of a defence applied to the adversarial image (Athalye et al., ICML
2018). Each draw picks one of the listed defences (seeded by ``(seed, iteration, repeat,
draw)``, the same for every sample), and random defences draw fresh, per-sample seeded noise.

Differentiable defences are differentiated through: JPEG by kornia's differentiable codec
(Reich et al. 2024), blur by a Gaussian kernel of 4 sigma support (kornia; borders reflect
without repeating the edge pixel, scipy repeats it), resize by ``F.interpolate`` down and up
(``lanczos`` as bicubic, ``box`` as area down / nearest up), noise by adding seeded Gaussian
noise and clipping. The purifiers (``diffpure``, ``gridpure``, ``impress``,
``noisy_upscale``) use BPDA (Athalye et al. 2018): the forward is the real purifier on the
8-bit image, without gradients, and the backward is the identity (``bpda=identity``, the
default), or for ``diffpure`` the purifier itself (``bpda=through``: the img2img noising and
denoising differentiated step by step, as ``EditForward`` runs an edit).
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ldmdata.attacks.forward import EditBatch, EditForward, EditSettings
from ldmdata.attacks.methods import Objective
from ldmdata.errors import LdmdataError
from ldmdata.purify import Defender, make_defence, split_spec
from ldmdata.seeds import derive_seed

DIFFERENTIABLE = ("jpeg", "blur", "noise", "resize")
BPDA = ("identity", "through")
THROUGH = ("diffpure",)  # purifiers cheap enough to differentiate through
UP_DOWN = {"nearest": ("nearest", "nearest"), "bilinear": ("bilinear", "bilinear"),
           "bicubic": ("bicubic", "bicubic"), "lanczos": ("bicubic", "bicubic"),
           "box": ("area", "nearest")}


def split_eot(text: str) -> list[str]:
    """``jpeg:quality=75,blur,resize:factor=2,resample=bilinear`` -> one spec per defence.

    A comma-separated part with ``=`` and no ``:`` is one more parameter of the spec before it.
    """
    specs: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if specs and "=" in part and ":" not in part:
            specs[-1] += ("," if ":" in specs[-1] else ":") + part
        else:
            specs.append(part)
    return specs


def parse_eot(value) -> tuple[dict, ...]:
    """Canonical EOT entries ``{method, params, bpda}`` from a string, a list of specs/mappings.

    ``bpda`` is None for differentiable defences. One clear line for any bad entry.
    """
    if value is None or value == "" or value == ():
        return ()
    items = split_eot(value) if isinstance(value, str) else list(value)
    return tuple(_entry(item) for item in items)


def _entry(item) -> dict:
    if isinstance(item, dict) and "params" in item:  # already canonical
        item = {"method": item["method"], **item["params"], "bpda": item.get("bpda")}
    if isinstance(item, dict):
        params = dict(item)
        method = params.pop("method", None)
        if method is None:
            raise LdmdataError(f"eot: a defence mapping needs a method key, got {item!r}")
    elif isinstance(item, str):
        method, params = split_spec(item)
    else:
        raise LdmdataError(f"eot: give defence specs such as jpeg:quality=75, got {item!r}")
    bpda = params.pop("bpda", None)
    try:
        defence = make_defence(method, params)
    except LdmdataError as err:
        raise LdmdataError(f"eot: {err}") from None
    if method in DIFFERENTIABLE:
        if bpda is not None:
            raise LdmdataError(f"eot {method}: it is differentiated through; bpda applies to "
                               "the purifiers (diffpure, gridpure, impress, noisy_upscale)")
    else:
        bpda = bpda or "identity"
        if bpda not in BPDA:
            raise LdmdataError(f"eot {method}: bpda must be one of {', '.join(BPDA)}, "
                               f"got {bpda!r}")
        if bpda == "through" and method not in THROUGH:
            raise LdmdataError(f"eot {method}: bpda=through is available for "
                               f"{', '.join(THROUGH)} only; use bpda=identity")
    return {"method": method, "params": defence.params, "bpda": bpda}


def model_kinds(entries: tuple[dict, ...]) -> list[str]:
    """The editing kinds of the pipelines the EOT purifiers run (to load once each)."""
    kinds = [make_defence(e["method"], e["params"]).model_kind for e in entries]
    return sorted({k for k in kinds if k is not None})


class EotTransforms:
    """Draws and applies the EOT defences to a batch ``B x 3 x H x W`` in [0, 1]."""

    def __init__(self, entries: tuple[dict, ...], pipes: dict, seed: int):
        self.entries, self.seed = entries, seed
        self.defences = [make_defence(e["method"], e["params"]) for e in entries]
        self.defenders = [None if d.method in DIFFERENTIABLE
                          else Defender(d, pipes.get(d.model_kind)) for d in self.defences]
        self.pipes = pipes

    def __call__(self, x: torch.Tensor, keys: list[str], draw: tuple[int, int, int]
                 ) -> torch.Tensor:
        """One draw ``(iteration, repeat, draw)``: a seeded choice of defence, applied."""
        index = random.Random(derive_seed(self.seed, "eot", *draw)).randrange(len(self.entries))
        defence, bpda = self.defences[index], self.entries[index]["bpda"]
        p = defence.params
        if defence.method == "jpeg":
            from kornia.enhance import jpeg_codec_differentiable

            quality = torch.full((x.shape[0],), float(p["quality"]), device=x.device)
            return jpeg_codec_differentiable(x, quality).clamp(0, 1)
        if defence.method == "blur":
            return gaussian_blur(x, p["sigma"])
        if defence.method == "resize":
            return resize(x, p["factor"], p["resample"])
        draw_keys = [f"{k}:eot:{':'.join(map(str, draw))}" for k in keys]
        if defence.method == "noise":
            return add_noise(x, p["std"], [derive_seed(p["seed"], "noise", k) for k in draw_keys])
        if bpda == "through":
            return self._diffpure_through(x, p, draw_keys)
        with torch.no_grad():
            purified = self.defenders[index](to_images(x), draw_keys)
        return x + (from_images(purified).to(x) - x).detach()

    def _diffpure_through(self, x, p, draw_keys) -> torch.Tensor:
        settings = EditSettings(p["num_inference_steps"], p["strength"], p["guidance_scale"], 0.0)
        forward = EditForward(self.pipes["img2img"], "img2img", settings)
        batch = EditBatch([""] * x.shape[0], [derive_seed(p["seed"], "diffpure", k)
                                             for k in draw_keys])
        return EditForward.postprocess(forward.run(x, batch).float())


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with 4 sigma support (capped by the image size), reflected borders."""
    from kornia.filters import gaussian_blur2d

    half = min(math.ceil(4 * sigma), min(x.shape[-2:]) - 1)
    return gaussian_blur2d(x, (2 * half + 1, 2 * half + 1), (sigma, sigma), border_type="reflect")


def resize(x: torch.Tensor, factor: float, resample: str) -> torch.Tensor:
    height, width = x.shape[-2:]
    small = (max(1, round(height / factor)), max(1, round(width / factor)))
    down, up = UP_DOWN[resample]
    smooth = down in ("bilinear", "bicubic")
    out = F.interpolate(x, size=small, mode=down, antialias=smooth,
                        **({"align_corners": False} if smooth else {}))
    out = F.interpolate(out, size=(height, width), mode=up,
                        **({"align_corners": False} if up != "nearest" else {}))
    return out.clamp(0, 1)


def add_noise(x: torch.Tensor, std: float, seeds: list[int]) -> torch.Tensor:
    draws = torch.cat([torch.randn((1, *x.shape[1:]), generator=torch.Generator("cpu")
                                   .manual_seed(s)) for s in seeds]).to(x)
    return (x + std * draws).clamp(0, 1)


def to_images(x: torch.Tensor) -> list[Image.Image]:
    pixels = (x.detach().float() * 255).round().clamp(0, 255).to(torch.uint8)
    return [Image.fromarray(a, "RGB") for a in pixels.permute(0, 2, 3, 1).cpu().numpy()]


def from_images(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(im.convert("RGB"))) for im in images]
                       ).permute(0, 3, 1, 2).float() / 255


class EotObjective(Objective):
    """``objective`` of the defended image, averaged over ``samples`` draws per call.

    :meth:`evaluate` (the stored image's loss) is the plain objective: no defence.
    """

    def __init__(self, objective: Objective, transforms: EotTransforms, samples: int,
                 keys: list[str]):
        self.objective, self.transforms, self.samples, self.keys = (
            objective, transforms, samples, keys)

    def __call__(self, x_adv, iteration, rep):
        total = 0
        for draw in range(self.samples):
            defended = self.transforms(x_adv, self.keys, (iteration, rep, draw))
            total = total + self.objective(defended, iteration, rep)
        return total / self.samples

    def evaluate(self, x):
        return self.objective.evaluate(x)
