"""Purifiers that run a diffusion pipeline: noisy upscaling, DiffPure and GrIDPure.

Every call is one diffusers pipeline call as a user makes it, one generator per image seeded
by ``(seed, method, image key)``, so an image's pixels do not depend on its batch.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ldmdata.purify.pixels import noise, to_image
from ldmdata.seeds import derive_seed


def by_size(images: list[Image.Image]) -> dict[tuple[int, int], list[int]]:
    """Indices of ``images`` grouped by size (a pipeline call takes one size)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(image.size, []).append(i)
    return groups


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The pipeline output in RGB at ``size`` (bicubic when the pipeline rounded the size)."""
    image = image.convert("RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.BICUBIC)


def noisy_upscale(upscaler, images: list[Image.Image], keys: list[str], p: dict
                  ) -> list[Image.Image]:
    """Down by ``downscale``, Gaussian noise, then the x4 upscaler (Hönig et al., ICLR 2025)."""
    out: list[Image.Image] = [None] * len(images)
    for (width, height), members in by_size(images).items():
        small = (max(1, width // p["downscale"]), max(1, height // p["downscale"]))
        noisy = [
            noise(images[i].convert("RGB").resize(small, Image.Resampling.BICUBIC),
                  p["std"], derive_seed(p["seed"], "noise", keys[i]))
            for i in members
        ]
        gens = [torch.Generator("cpu").manual_seed(derive_seed(p["seed"], "upscale", keys[i]))
                for i in members]
        result = upscaler(
            prompt=[p["prompt"]] * len(members), image=noisy,
            num_inference_steps=p["num_inference_steps"], guidance_scale=p["guidance_scale"],
            noise_level=p["noise_level"], generator=gens, output_type="pil",
        ).images
        for i, image in zip(members, result, strict=True):
            out[i] = _fit(image, (width, height))
    return out


def diffpure(pipe, images: list[Image.Image], keys: list[str], p: dict, tag: str = "diffpure"
             ) -> list[Image.Image]:
    """DiffPure with the SD img2img pipeline: noise to ``strength`` (t*), denoise, empty prompt.

    The latent-diffusion form used against LDM protections (e.g. Hönig et al., ICLR 2025;
    Zhao et al., CVPR 2024): img2img noises the VAE latent to t* = strength and runs
    ``int(num_inference_steps * strength)`` denoising steps with the prompt ``""``.
    """
    out: list[Image.Image] = [None] * len(images)
    for size, members in by_size(images).items():
        gens = [torch.Generator("cpu").manual_seed(derive_seed(p["seed"], tag, keys[i]))
                for i in members]
        result = pipe(
            prompt=[""] * len(members), image=[images[i].convert("RGB") for i in members],
            strength=p["strength"], num_inference_steps=p["num_inference_steps"],
            guidance_scale=p["guidance_scale"], generator=gens, output_type="pil",
        ).images
        for i, image in zip(members, result, strict=True):
            out[i] = _fit(image, size)
    return out


def grid_boxes(width: int, height: int, grid: int, stride: int) -> list[tuple[int, int, int, int]]:
    """GrIDPure's crops: ``grid`` squares every ``stride`` pixels, plus ones flush right/bottom."""
    def starts(length: int) -> list[int]:
        found = list(range(0, length - grid + 1, stride))
        return found if found[-1] == length - grid else [*found, length - grid]

    return [(x, y, x + grid, y + grid) for y in starts(height) for x in starts(width)]


def corner_boxes(width: int, height: int, grid: int) -> list[tuple[int, int, int, int]]:
    """The four ``grid/2`` corners (top-left, top-right, bottom-left, bottom-right)."""
    h = grid // 2
    return [(0, 0, h, h), (width - h, 0, width, h), (0, height - h, h, height),
            (width - h, height - h, width, height)]


def gridpure(pipe, images: list[Image.Image], keys: list[str], p: dict) -> list[Image.Image]:
    """GrIDPure (Zhao et al., CVPR 2024, "Can protective perturbation safeguard personal data
    from being exploited by Stable Diffusion?"; ZhengyueZhao/GrIDPure).

    Each of ``iterations`` rounds crops overlapping ``grid`` squares every ``stride`` pixels and
    one extra square made of the four ``grid/2`` corners (which the grids cover least),
    purifies each crop separately with :func:`diffpure`, merges them by averaging where they
    overlap, and blends ``(1 - gamma) * merged + gamma * round input``; the result (8-bit) is the
    next round's input. The paper purifies with a 256 px pixel-space ImageNet diffusion model
    (guided-diffusion, t = pure_steps / 1000); we use the Stable Diffusion img2img model at the
    same t* (``strength``), i.e. a latent-space purifier of each crop.
    """
    return [_gridpure_one(pipe, image.convert("RGB"), key, p)
            for image, key in zip(images, keys, strict=True)]


def _gridpure_one(pipe, image: Image.Image, key: str, p: dict) -> Image.Image:
    width, height = image.size
    grid, h = p["grid"], p["grid"] // 2
    boxes, corners = grid_boxes(width, height, grid, p["stride"]), corner_boxes(width, height, grid)
    quadrants = [(0, 0), (h, 0), (0, h), (h, h)]
    for round_ in range(p["iterations"]):
        corner_image = Image.new("RGB", (grid, grid))
        for box, at in zip(corners, quadrants, strict=True):
            corner_image.paste(image.crop(box), at)
        crops = [image.crop(box) for box in boxes] + [corner_image]
        crop_keys = [f"{key}:{round_}:{j}" for j in range(len(crops))]
        purified = [np.asarray(c, dtype=np.float64) / 255
                    for c in diffpure(pipe, crops, crop_keys, p, tag="gridpure")]
        total = np.zeros((height, width, 3))
        count = np.zeros((height, width, 1))
        for (x0, y0, x1, y1), crop in zip(boxes, purified[:-1], strict=True):
            total[y0:y1, x0:x1] += crop
            count[y0:y1, x0:x1] += 1
        for (x0, y0, x1, y1), (qx, qy) in zip(corners, quadrants, strict=True):
            total[y0:y1, x0:x1] += purified[-1][qy:qy + h, qx:qx + h]
            count[y0:y1, x0:x1] += 1
        merged = total / count
        before = np.asarray(image, dtype=np.float64) / 255
        image = to_image((1 - p["gamma"]) * merged + p["gamma"] * before)
    return image
