"""Procedural scenes with exact masks and captions: an offline, unbounded source with ground truth.

Each item is a pure function of ``(seed, index)``: a patterned background in a named colour and
1-3 flat-coloured shapes. The main entity is the largest visible shape (roughly 8-45 % of the
image at the default size); every mask is exactly the pixels painted in that shape's colour.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ldmdata.errors import LdmdataError
from ldmdata.sources.base import SourceItem

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "pink": (240, 130, 180),
    "cyan": (40, 200, 210),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
    "gray": (128, 128, 128),
}
BACKGROUNDS = ("plain", "gradient", "striped", "checkered", "mottled")
# Area of each shape as a multiple of r**2: r is the radius (of the circumscribed circle for
# polygons, the outer one for ring and star), except for the square, where it is half the side.
SHAPE_AREA = {
    "circle": math.pi,
    "square": 4.0,
    "triangle": 3 * math.sqrt(3) / 4,
    "diamond": 2.0,
    "hexagon": 3 * math.sqrt(3) / 2,
    "star": 5 * 0.45 * math.sin(math.pi / 5),
    "ring": math.pi * (1 - 0.55**2),
}
SHAPES = tuple(SHAPE_AREA)
MAIN_FRACTION = (0.12, 0.40)  # target area of the main shape, as a fraction of the image
SMALL_FRACTION = (0.015, 0.05)  # target area of each other shape
MIN_SIZE = 32
MAX_SIZE = 8192
_PLACEMENT_TRIES = 8


@dataclass
class _Shape:
    color: str
    kind: str
    center: tuple[float, float]
    box: tuple[int, int, int, int]  # left, top, right, bottom (exclusive) in image pixels
    local: np.ndarray  # bool mask of the box: the pixels this shape painted

    @property
    def label(self) -> str:
        return f"{self.color} {self.kind}"

    def region(self, full: np.ndarray) -> np.ndarray:
        """The part of a full-image array that lies under this shape's box (a view)."""
        left, top, right, bottom = self.box
        return full[top:bottom, left:right]


class SyntheticSource:
    """Unbounded procedural scenes; ``iterate(start)`` yields items ``start, start+1, ...``."""

    curated = False  # not a curated benchmark (see Source.curated)

    def __init__(self, seed: int, width: int = 640, height: int = 480):
        if not (MIN_SIZE <= width <= MAX_SIZE and MIN_SIZE <= height <= MAX_SIZE):
            raise LdmdataError(
                f"synthetic image size {width}x{height} is outside {MIN_SIZE}..{MAX_SIZE} pixels"
            )
        if seed < 0:
            raise LdmdataError(f"synthetic seed must be >= 0, got {seed}")
        self.seed = seed
        self.width = width
        self.height = height
        self.spec = f"synthetic:{width}x{height}"

    def size(self) -> int | None:
        return None

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "kind": "synthetic",
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "count": None,
        }

    def iterate(self, start: int = 0) -> Iterator[SourceItem]:
        index = start
        while True:
            yield self.item(index)
            index += 1

    def item(self, index: int) -> SourceItem:
        """The scene at position ``index`` (a pure function of seed and index)."""
        rng = np.random.default_rng([self.seed, index])
        size = (self.width, self.height)
        names = list(COLORS)
        background_color = names[rng.integers(len(names))]
        style = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        image = _background(rng, size, background_color, style)

        shape_colors = rng.permutation([n for n in names if n != background_color])
        covered = np.zeros((self.height, self.width), bool)
        shapes = []
        for i in range(int(rng.integers(1, 4))):
            fraction = MAIN_FRACTION if i == 0 else SMALL_FRACTION
            shape = _draw_shape(rng, image, str(shape_colors[i]), fraction, covered)
            shape.region(covered)[...] |= shape.local
            shapes.append(shape)
        _keep_visible(shapes, covered)
        shapes.sort(key=lambda shape: -np.count_nonzero(shape.local))
        labels = [shape.label for shape in shapes]
        captions = _captions(rng, labels, shapes[0], size, background_color, style)
        masks = {}
        for shape in shapes:
            mask = np.zeros((self.height, self.width), bool)
            shape.region(mask)[...] = shape.local
            masks[shape.label] = mask
        return SourceItem(
            index=index,
            source_id=f"synthetic:{self.seed}:{index}",
            image=image,
            captions=captions,
            labels=labels,
            masks=masks,
        )


def _palette(color: tuple[int, int, int]) -> list[int]:
    """A 256-colour palette running from a dark to a light shade of ``color``."""
    dark = [c * 0.6 for c in color]
    light = [c + (255 - c) * 0.35 for c in color]
    return [
        round(d + (li - d) * v / 255) for v in range(256) for d, li in zip(dark, light, strict=True)
    ]


PALETTES = {name: _palette(rgb) for name, rgb in COLORS.items()}


def _coordinate(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, str]:
    """Positions along a random axis as a 1-D ramp, and how the ramp spans the image.

    ``"x"``: ramp[x]; ``"y"``: ramp[y]; ``"diagonal"``: ramp[x + y].
    """
    axis = ("x", "y", "diagonal")[rng.integers(3)]
    length = {"x": width, "y": height, "diagonal": width + height - 1}[axis]
    return np.arange(length, dtype=np.int64), axis


def _spread(ramp: np.ndarray, axis: str, width: int, height: int) -> np.ndarray:
    """Lay a 1-D uint8 ramp over the image along ``axis`` (HxW, contiguous)."""
    if axis == "x":
        return np.ascontiguousarray(np.broadcast_to(ramp[None, :], (height, width)))
    if axis == "y":
        return np.ascontiguousarray(np.broadcast_to(ramp[:, None], (height, width)))
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(ramp, width)[:height])


def _background(
    rng: np.random.Generator, size: tuple[int, int], color: str, style: str
) -> Image.Image:
    """The background picture in one of :data:`BACKGROUNDS` (RGB)."""
    width, height = size
    if style == "plain":
        return Image.new("RGB", size, COLORS[color])
    if style == "mottled":  # smooth value noise
        coarse = rng.integers(0, 256, (height // 48 + 2, width // 48 + 2), dtype=np.uint8)
        pattern = Image.fromarray(coarse).resize(size, Image.Resampling.BILINEAR)
    elif style == "checkered":
        period = int(rng.integers(16, 48))
        columns = (np.arange(width) // period % 2).astype(np.uint8)
        rows = (np.arange(height) // period % 2).astype(np.uint8)
        pattern = Image.fromarray((columns[None, :] ^ rows[:, None]) * np.uint8(255))
    else:
        position, axis = _coordinate(rng, width, height)
        if style == "gradient":
            ramp = position * 255 // max(len(position) - 1, 1)
        else:  # striped
            ramp = position // int(rng.integers(12, 40)) % 2 * 255
        pattern = Image.fromarray(_spread(ramp.astype(np.uint8), axis, width, height))
    pattern.putpalette(PALETTES[color])
    return pattern.convert("RGB")


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "star":
        radii = [r if k % 2 == 0 else 0.45 * r for k in range(10)]
        angles = [angle + k * math.pi / 5 for k in range(10)]
    else:
        sides = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6}[kind]
        radius = r * math.sqrt(2) if kind == "square" else r
        radii = [radius] * sides
        offset = math.pi / 4 if kind == "square" else 0.0
        angles = [angle + offset + k * 2 * math.pi / sides for k in range(sides)]
    return [
        (cx + d * math.cos(a), cy + d * math.sin(a)) for d, a in zip(radii, angles, strict=True)
    ]


def _draw_shape(
    rng: np.random.Generator,
    image: Image.Image,
    color: str,
    fraction: tuple[float, float],
    covered: np.ndarray,
) -> _Shape:
    """Paint one shape on ``image``, avoiding ``covered`` pixels where it can (a few tries).

    Returns the shape with the exact mask of the pixels it painted.
    """
    width, height = image.size
    kind = SHAPES[rng.integers(len(SHAPES))]
    area = rng.uniform(*fraction) * width * height
    reach = math.sqrt(2) if kind == "square" else 1.0  # farthest point, in units of r
    r = min(math.sqrt(area / SHAPE_AREA[kind]), 0.47 * min(width, height) / reach)
    extent = r * reach
    angle = 0.0 if kind in ("circle", "ring") else rng.uniform(0, 2 * math.pi)
    best: tuple[int, _Shape] | None = None
    for _ in range(_PLACEMENT_TRIES):
        cx, cy = rng.uniform(extent, width - extent), rng.uniform(extent, height - extent)
        box = (
            max(int(cx - extent) - 1, 0),
            max(int(cy - extent) - 1, 0),
            min(int(cx + extent) + 2, width),
            min(int(cy + extent) + 2, height),
        )
        local = _rasterise(kind, cx - box[0], cy - box[1], r, angle, box)
        shape = _Shape(color=color, kind=kind, center=(cx, cy), box=box, local=local)
        overlap = int(np.count_nonzero(local & shape.region(covered)))
        if best is None or overlap < best[0]:
            best = (overlap, shape)
        if overlap == 0:
            break
    assert best is not None
    shape = best[1]
    image.paste(COLORS[color], shape.box, mask=Image.fromarray(shape.local))
    return shape


def _rasterise(
    kind: str, x: float, y: float, r: float, angle: float, box: tuple[int, int, int, int]
) -> np.ndarray:
    """The bool mask (box-sized) of a shape centred at (x, y) inside ``box``."""
    local = Image.new("1", (box[2] - box[0], box[3] - box[1]), 0)
    draw = ImageDraw.Draw(local)
    if kind in ("circle", "ring"):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=1)
        if kind == "ring":
            inner = 0.55 * r
            draw.ellipse((x - inner, y - inner, x + inner, y + inner), fill=0)
    else:
        draw.polygon(_polygon(kind, x, y, r, angle), fill=1)
    return np.asarray(local)


def _keep_visible(shapes: list[_Shape], covered: np.ndarray) -> None:
    """Trim each shape's mask to the pixels that no later shape painted over."""
    covered[...] = False
    for shape in reversed(shapes):
        shape.local = shape.local & ~shape.region(covered)
        shape.region(covered)[...] |= shape.local


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _where(shape: _Shape, size: tuple[int, int]) -> str:
    """Where the shape's centre sits, in words ("in the top left", "in the center")."""
    (x, y), (width, height) = shape.center, size
    column = ("left", "center", "right")[min(int(3 * x / width), 2)]
    row = ("top", "middle", "bottom")[min(int(3 * y / height), 2)]
    if (row, column) == ("middle", "center"):
        return "in the center"
    if row == "middle":
        return f"on the {column}"
    if column == "center":
        return f"at the {row}"
    return f"in the {row} {column}"


def _captions(
    rng: np.random.Generator,
    labels: list[str],
    main: _Shape,
    size: tuple[int, int],
    color: str,
    style: str,
) -> list[str]:
    """One to three captions naming every shape (main first) and the background."""
    fraction = np.count_nonzero(main.local) / (size[0] * size[1])
    first = _article(labels[0])
    others = [_article(f"small {label}") for label in labels[1:]]
    background = {
        "plain": f"a plain {color} background",
        "gradient": f"a {color} gradient background",
        "striped": f"a {color} striped background",
        "checkered": f"a {color} checkered background",
        "mottled": f"a mottled {color} background",
    }[style]
    listed = first if not others else ", ".join([first, *others[:-1]]) + f" and {others[-1]}"
    large = "large " if fraction > 0.25 else ""
    captions = [
        f"{listed} on {background}",
        f"{_article(large + labels[0])} {_where(main, size)} of the picture, on {background}",
        f"{background[0].upper()}{background[1:]} with {listed}",
    ]
    return captions[: int(rng.integers(1, 4))]
