"""What every image source yields: items addressed by a stable integer position."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image


@dataclass
class Instance:
    """One annotated object: its class name, box (x0, y0, x1, y1) in image pixels, and mask
    (bool HxW, same size as the decoded image)."""

    label: str
    box: tuple[float, float, float, float]
    mask: np.ndarray


@dataclass
class SourceItem:
    """One raw input of a source.

    ``index`` is the item's position in the source's fixed order (resume restarts from it);
    ``source_id`` names it for rejects and provenance. ``data`` holds the encoded file bytes
    (folder, coco, hf) or ``image`` an already decoded picture (synthetic); the builder turns
    either into a clean RGB image with :func:`ldmdata.sources.decode.load_rgb`.
    """

    index: int
    source_id: str
    data: bytes | None = None
    image: Image.Image | None = None
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    # Ground-truth instance masks (bool HxW, same size as the decoded image) by label.
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    # The instances behind ``labels`` (coco), largest first.
    instances: list[Instance] = field(default_factory=list)
    # A curated benchmark's own edit prompts, in its order.
    prompts: list[str] = field(default_factory=list)
    # A curated benchmark's own mask file (encoded bytes, white on the entity); ``data`` is then
    # the image region it belongs to (already cropped by the benchmark).
    mask_data: bytes | None = None


class Source(Protocol):
    """An ordered, restartable stream of :class:`SourceItem`."""

    spec: str  # the user's spec string, recorded in manifests
    # True for a curated benchmark (its prompts, masks and resizing are the data): builders
    # with ``prompts_from``/``mask_from``/``resize: auto`` then take them as given.
    curated: bool

    def size(self) -> int | None:  # None when the size is unknown (streamed) or unbounded
        ...

    def iterate(self, start: int = 0) -> Iterator[SourceItem]:
        """Yield items from position ``start`` on, in the source's fixed order."""
        ...

    def describe(self) -> dict:
        """A JSON-able description for manifests (spec, counts, ...)."""
        ...


class SelectedSource:
    """The items of ``source`` at ``positions`` (in that order), renumbered 0, 1, ...; a view
    that a selection (e.g. the study's CLIP ranking) puts in front of a finite source."""

    def __init__(self, source: Source, positions: list[int], how: str):
        self.source = source
        self.positions = list(positions)
        self.spec = source.spec
        self.curated = source.curated
        self.how = how

    def size(self) -> int:
        return len(self.positions)

    def describe(self) -> dict:
        return {**self.source.describe(), "selection": self.how, "count": self.size()}

    def iterate(self, start: int = 0) -> Iterator[SourceItem]:
        for index in range(start, len(self.positions)):
            item = next(self.source.iterate(self.positions[index]))
            yield dataclasses.replace(item, index=index)
