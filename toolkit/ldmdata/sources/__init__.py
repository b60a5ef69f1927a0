"""Where images come from: open a source from its spec string.

Specs: ``synthetic``, ``synthetic:WxH``, ``folder:PATH``, ``coco:ANNOTATIONS_JSON[:IMAGES_DIR]``,
``hf:NAME``, ``hf:NAME:CONFIG``, ``hf:NAME:CONFIG:SPLIT`` (``hf:NAME::SPLIT`` for the default
config; the split defaults to ``train``), ``ldm-robustness:PATH`` (the study's released dataset
folder; which of its sets depends on the task the source is opened for).
"""

from __future__ import annotations

import re

from ldmdata.errors import LdmdataError
from ldmdata.sources.base import Instance, SelectedSource, Source, SourceItem
from ldmdata.sources.coco import CocoSource
from ldmdata.sources.folder import FolderSource
from ldmdata.sources.hf import HfSource
from ldmdata.sources.ldm_robustness import LdmRobustnessSource
from ldmdata.sources.synthetic import SyntheticSource

SCHEMES = ("synthetic", "folder", "coco", "hf", "ldm-robustness")

__all__ = [
    "SCHEMES",
    "CocoSource",
    "FolderSource",
    "HfSource",
    "Instance",
    "LdmRobustnessSource",
    "SelectedSource",
    "Source",
    "SourceItem",
    "SyntheticSource",
    "open_source",
]


def open_source(spec: str, seed: int = 0, task: str | None = None) -> Source:
    """Open and validate the source named by ``spec`` (``seed`` drives ``synthetic``; ``task``
    picks the set of a benchmark folder that holds one per task, ``ldm-robustness``).

    Raises :class:`LdmdataError` with one line for an unknown scheme, a malformed spec or a
    missing path, before anything is read or written.
    """
    scheme, _, rest = spec.partition(":")
    if scheme not in SCHEMES:
        raise LdmdataError(
            f"unknown source {spec!r}: the scheme must be one of {', '.join(SCHEMES)} "
            "(e.g. synthetic, folder:PATH, coco:ANNOTATIONS_JSON, hf:NAME, ldm-robustness:PATH)"
        )
    if scheme == "synthetic":
        if not rest:
            return SyntheticSource(seed)
        size = re.fullmatch(r"(\d+)x(\d+)", rest)
        if size is None:
            raise LdmdataError(f"bad source {spec!r}: expected synthetic or synthetic:WIDTHxHEIGHT")
        return SyntheticSource(seed, int(size.group(1)), int(size.group(2)))
    if not rest:
        raise LdmdataError(f"bad source {spec!r}: {scheme}: needs a path or name after the colon")
    if scheme == "folder":
        return FolderSource(rest)
    if scheme == "ldm-robustness":
        return LdmRobustnessSource(rest, task)
    if scheme == "coco":
        annotations, _, images_dir = rest.partition(":")
        return CocoSource(annotations, images_dir or None)
    parts = rest.split(":")
    if len(parts) > 3 or not parts[0]:
        raise LdmdataError(f"bad source {spec!r}: expected hf:NAME[:CONFIG][:SPLIT]")
    name, config, split = (parts + ["", ""])[:3]
    return HfSource(name, config or None, split or "train")
