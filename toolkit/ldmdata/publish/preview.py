"""A small preview grid of a dataset: one row per sample, its image columns side by side."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import datasets
from PIL import Image

from ldmdata.dataset import iter_rows, read_manifest

BACKGROUND = (24, 24, 24)
GAP = 4


def image_columns(manifest: dict) -> list[str]:
    """The dataset's image columns in schema order (image | mask, hr | lr, ...)."""
    features = datasets.Features.from_dict(manifest["features"])
    return [k for k, v in features.items() if isinstance(v, datasets.Image)]


def _fit(image: Image.Image, cell: int) -> Image.Image:
    """``image`` as RGB, scaled to fit a ``cell`` square, centred on the background."""
    image = image.convert("RGB")
    scale = cell / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Enlarging with nearest shows low-resolution inputs and masks as they really are.
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    image = image.resize(size, resample)
    tile = Image.new("RGB", (cell, cell), BACKGROUND)
    tile.paste(image, ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return tile


def make_preview(
    folder: Path, out_path: Path, rows: int = 4, cell: int = 160
) -> tuple[int, list[str]]:
    """Write a PNG grid of the first ``rows`` samples; returns (rows drawn, image columns)."""
    columns = image_columns(read_manifest(folder))
    if not columns:
        raise ValueError("the dataset has no image columns to preview")
    samples = list(islice(iter_rows(folder, columns=columns), rows))
    width = len(columns) * cell + (len(columns) + 1) * GAP
    height = max(1, len(samples)) * cell + (max(1, len(samples)) + 1) * GAP
    grid = Image.new("RGB", (width, height), BACKGROUND)
    for r, sample in enumerate(samples):
        for c, name in enumerate(columns):
            grid.paste(_fit(sample[name], cell), (GAP + c * (cell + GAP), GAP + r * (cell + GAP)))
    grid.save(out_path, format="PNG", optimize=True)
    return len(samples), columns
