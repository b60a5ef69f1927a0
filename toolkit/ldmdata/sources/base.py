"""What every image source yields: items addressed by a stable integer position."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image


@dataclass
class SourceItem:
    """One raw input of a source.

    ``index`` is the item's position in the source's fixed order (resume restarts from it);
    ``source_id`` names it for rejects and provenance. ``data`` holds the encoded file bytes
    (folder, coco, hf) or ``image`` an already decoded picture (synthetic); the builder turns
    either into a clean RGB image with :func:`ldmdata.images.load_rgb`.
    """

    index: int
    source_id: str
    data: bytes | None = None
    image: Image.Image | None = None
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    # Ground-truth instance masks (bool HxW, same size as the decoded image) by label.
    masks: dict[str, np.ndarray] = field(default_factory=dict)


class Source(Protocol):
    """An ordered, restartable stream of :class:`SourceItem`."""

    spec: str  # the user's spec string, recorded in manifests

    def size(self) -> int | None:  # None when the size is unknown (streamed) or unbounded
        ...

    def iterate(self, start: int = 0) -> Iterator[SourceItem]:
        """Yield items from position ``start`` on, in the source's fixed order."""
        ...

    def describe(self) -> dict:
        """A JSON-able description for manifests (spec, counts, ...)."""
        ...
