"""A small preview grid of a dataset: one row per sample, its image columns side by side.

A dataset with a single image column shows its samples in one row instead.
"""

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
    """Write a PNG grid of the first ``rows`` samples; returns (rows drawn, image columns).

    A dataset without image columns gets no preview: (0, []) and nothing written.
    """
    columns = image_columns(read_manifest(folder))
    if not columns:
        return 0, []
    samples = list(islice(iter_rows(folder, columns=columns), rows))
    across = len(columns) == 1  # one image per sample: lay the samples out in a row
    n_cols, n_rows = (len(samples), 1) if across else (len(columns), len(samples))
    grid = Image.new("RGB", (n_cols * (cell + GAP) + GAP, n_rows * (cell + GAP) + GAP), BACKGROUND)
    for r, sample in enumerate(samples):
        for c, name in enumerate(columns):
            x, y = (r, 0) if across else (c, r)
            grid.paste(_fit(sample[name], cell), (GAP + x * (cell + GAP), GAP + y * (cell + GAP)))
    grid.save(out_path, format="PNG", optimize=True)
    return len(samples), columns
