"""Small img2img / inpaint / sr datasets in the builders' format, for attack tests."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
from PIL import Image, ImageDraw

from ldmdata.dataset import ShardedWriter
from ldmdata.dataset.png import encode_png

PROMPTS = ["a red ball on a table", "a dog in the snow", "a boat on a lake at night"]


def scene(seed: int, size: int) -> tuple[Image.Image, Image.Image, tuple[int, int, int, int]]:
    """A smooth random picture with one rectangle 'entity' and its mask (255 on the entity)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx * rng.uniform(0.5, 2) + c) * 0.4 + 0.5 for c in range(3)], -1)
    image = Image.fromarray((base * 255).astype(np.uint8))
    x0, y0 = (int(v) for v in rng.integers(size // 8, size // 3, 2))
    box = (x0, y0, x0 + size // 2, y0 + size // 2)
    ImageDraw.Draw(image).rectangle(box, fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return image, mask, box


def features(kind: str) -> datasets.Features:
    columns = {
        "id": datasets.Value("string"),
        "source_id": datasets.Value("string"),
        "image": datasets.Image(),
        "caption": datasets.Value("string"),
        "prompts": datasets.Sequence(datasets.Value("string")),
        "prompt_clip_scores": datasets.Sequence(datasets.Value("float32")),
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
    }
    if kind == "inpaint":
        columns.update(
            mask=datasets.Image(),
            entity=datasets.Value("string"),
            box=datasets.Sequence(datasets.Value("int32")),
            mask_fraction=datasets.Value("float32"),
        )
    if kind == "sr":
        from ldmdata.builders.sr import FEATURES as SR_FEATURES

        return SR_FEATURES
    return datasets.Features(columns)


def make_dataset(folder: Path, kind: str, n: int = 2, size: int = 64, n_prompts: int = 2) -> Path:
    """Write ``n`` samples of ``kind`` (img2img | inpaint | sr) into ``folder``."""
    with ShardedWriter(folder, kind=kind, features=features(kind), config={"test": kind}) as w:
        for i in range(n):
            image, mask, box = scene(i, size)
            if kind == "sr":
                lr = image.resize((size // 4, size // 4), Image.Resampling.BICUBIC)
                row = {
                    "id": f"s{i}", "source_id": f"synthetic:{i}", "hr": encode_png(image),
                    "lr": encode_png(lr),
                    "scale": 4, "degradation": '{"kind": "bicubic"}', "caption": "a scene",
                    "captions": ["a scene"], "prompts": PROMPTS[:n_prompts],
                    "prompt_clip_scores": [0.3] * n_prompts,
                }
            else:
                row = {
                    "id": f"s{i}", "source_id": f"synthetic:{i}", "image": encode_png(image),
                    "caption": "a scene", "prompts": PROMPTS[:n_prompts],
                    "prompt_clip_scores": [0.3] * n_prompts, "width": size, "height": size,
                }
            if kind == "inpaint":
                row.update(mask=encode_png(mask), entity="ball", box=list(box),
                           mask_fraction=float(np.mean(np.array(mask) > 0)))
            w.add(row, cursor=i + 1)
        w.finish(n, {"task": kind})
    return folder


def images(*seeds: int):
    """``N x 3 x 64 x 64`` tensors in [0, 1] of the scenes with these seeds."""
    import torch

    from ldmdata.attacks.runner import to_tensor

    return torch.stack([to_tensor(scene(s, 64)[0]) for s in seeds])


def repaint_masks(*seeds: int):
    """The pipeline's repaint masks (1 off the entity) of the scenes with these seeds."""
    import torch

    masks = np.stack([np.array(scene(s, 64)[1]) for s in seeds])
    return torch.from_numpy(masks < 128).float()[:, None]


def adversarial_images(out: dict):
    """An attack's stored uint8 images as ``N x 3 x H x W`` floats in [0, 1]."""
    import torch

    return torch.from_numpy(out["images"]).permute(0, 3, 1, 2).float() / 255
