"""COCO images with their human captions and instance masks (the study's source).

Instances follow the study (``data_construction/generate_mask_filter_image`` in its
repository): the 5 largest by ``area``; when more than 2 remain, only those whose box covers
more than 5 % of the image (the largest alone if none does). Labels are their category names
ordered by total area; each label's mask is the union of its kept instances, rasterised from
polygons or decoded from RLE. Items also carry the kept instances one by one (largest first).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ldmdata.errors import LdmdataError
from ldmdata.sources.base import Instance, SourceItem

TOP_INSTANCES = 5
MIN_BOX_FRACTION = 0.05
FILTER_ABOVE = 2  # the box filter applies only to more than this many instances
_NAME = re.compile(r"(captions|instances)_(.+)\.json")


class CocoSource:
    """A COCO split from one annotation file (``captions_<split>.json`` or ``instances_...``).

    The sibling file of the other kind in the same folder is used when present. Images come from
    ``images_dir`` (default ``<annotation folder>/../<split>/``) and are ordered by image id.
    """

    curated = False  # not a curated benchmark (see Source.curated)

    def __init__(self, annotations_json: str | Path, images_dir: str | Path | None = None):
        given = Path(annotations_json)
        self.spec = f"coco:{annotations_json}" + (f":{images_dir}" if images_dir else "")
        if not given.is_file():
            raise LdmdataError(f"COCO annotation file {str(given)!r} not found")
        match = _NAME.fullmatch(given.name)
        self.split = match.group(2) if match else None
        if match:
            siblings = [
                given.parent / f"{kind}_{self.split}.json" for kind in ("captions", "instances")
            ]
            self.annotation_files = [p for p in siblings if p.is_file()]
        else:
            self.annotation_files = [given]
        if images_dir is None:
            if self.split is None:
                raise LdmdataError(
                    f"cannot tell the split from {given.name!r}; name the images folder "
                    "(coco:ANNOTATIONS_JSON:IMAGES_DIR)"
                )
            images_dir = given.parent.parent / self.split
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise LdmdataError(f"COCO images folder {str(self.images_dir)!r} not found")

        self._images: dict[int, dict] = {}
        self._captions: dict[int, list[str]] = {}
        self._instances: dict[int, list[dict]] = {}
        self._categories: dict[int, str] = {}
        for path in self.annotation_files:
            self._add(path, _load_json(path))
        self.ids = sorted(self._images)
        if not self.ids:
            raise LdmdataError(f"COCO annotations {str(given)!r} list no images")
        missing = [
            i for i in self.ids if not (self.images_dir / self._images[i]["file_name"]).is_file()
        ]
        if missing:
            first = self._images[missing[0]]["file_name"]
            raise LdmdataError(
                f"{len(missing)} of {len(self.ids)} COCO images are missing from "
                f"{str(self.images_dir)!r} (first: {first})"
            )

    def size(self) -> int:
        return len(self.ids)

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "kind": "coco",
            "split": self.split,
            "annotations": [str(p) for p in self.annotation_files],
            "images_dir": str(self.images_dir),
            "count": self.size(),
        }

    def iterate(self, start: int = 0) -> Iterator[SourceItem]:
        for index in range(start, len(self.ids)):
            image_id = self.ids[index]
            info = self._images[image_id]
            path = self.images_dir / info["file_name"]
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise LdmdataError(f"cannot read {path}: {exc.strerror or exc}") from exc
            instances = self._instances_of(image_id)
            labels, masks = labels_and_masks(instances)
            yield SourceItem(
                index=index,
                source_id=f"coco:{image_id}",
                data=data,
                captions=list(self._captions.get(image_id, [])),
                labels=labels,
                masks=masks,
                instances=instances,
            )

    def _add(self, path: Path, content: dict) -> None:
        """Merge one annotation file (captions or instances) into the index."""
        try:
            for image in content["images"]:
                entry = {k: image[k] for k in ("file_name", "width", "height")}
                self._images.setdefault(int(image["id"]), entry)
            for category in content.get("categories", []):
                self._categories[int(category["id"])] = str(category["name"])
            for ann in sorted(content["annotations"], key=lambda a: a["id"]):
                image_id = int(ann["image_id"])
                if "caption" in ann:
                    self._captions.setdefault(image_id, []).append(str(ann["caption"]).strip())
                elif "segmentation" in ann:
                    self._instances.setdefault(image_id, []).append(ann)
        except (KeyError, TypeError, ValueError) as exc:
            raise LdmdataError(f"{path} is not a COCO annotation file ({exc!r})") from exc

    def _instances_of(self, image_id: int) -> list[Instance]:
        """The study's kept instances of one image, largest first."""
        info = self._images[image_id]
        width, height = int(info["width"]), int(info["height"])
        out = []
        try:
            for ann in select_instances(self._instances.get(image_id, []), width, height):
                name = self._categories.get(int(ann["category_id"]), str(ann["category_id"]))
                mask = segmentation_mask(ann["segmentation"], width, height)
                out.append(Instance(name, _box(ann, mask), mask))
        except ValueError as exc:
            raise LdmdataError(f"COCO annotations of image {image_id}: {exc}") from exc
        return out


def labels_and_masks(instances: list[Instance]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Category names by total mask area (largest first) and each name's union mask."""
    masks: dict[str, np.ndarray] = {}
    for instance in instances:
        previous = masks.get(instance.label)
        masks[instance.label] = instance.mask if previous is None else previous | instance.mask
    labels = sorted(masks, key=lambda name: -int(masks[name].sum()))
    return labels, {name: masks[name] for name in labels}


def select_instances(instances: list[dict], width: int, height: int) -> list[dict]:
    """The study's choice: the 5 largest by area; when more than 2, those whose box covers
    more than 5 % of the image (the largest alone when none does). Largest first."""
    kept = sorted(instances, key=lambda a: -float(a.get("area", 0.0)))[:TOP_INSTANCES]
    if len(kept) <= FILTER_ABOVE:
        return kept
    large = [a for a in kept if _box_area(a, width, height) > MIN_BOX_FRACTION * width * height]
    return large or kept[:1]


def _box_area(ann: dict, width: int, height: int) -> float:
    if "bbox" in ann:
        return float(ann["bbox"][2]) * float(ann["bbox"][3])
    x0, y0, x1, y1 = _box(ann, segmentation_mask(ann["segmentation"], width, height))
    return (x1 - x0) * (y1 - y0)


def _box(ann: dict, mask: np.ndarray) -> tuple[float, float, float, float]:
    """The annotation's ``bbox`` as (x0, y0, x1, y1); the mask's bounds when it has none."""
    if "bbox" in ann:
        x, y, w, h = (float(v) for v in ann["bbox"])
        return x, y, x + w, y + h
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return 0.0, 0.0, 0.0, 0.0
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def segmentation_mask(segmentation: list | dict, width: int, height: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as a bool HxW mask."""
    if isinstance(segmentation, dict):
        size = [int(v) for v in segmentation.get("size", [])]
        if size != [height, width]:
            raise ValueError(f"RLE size {size} does not match the image ({height}, {width})")
        counts = segmentation.get("counts")
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        if isinstance(counts, str):
            counts = decode_rle_string(counts)
        if not isinstance(counts, list):
            raise ValueError("RLE counts must be a list or a string")
        return rle_to_mask(counts, width, height)
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in segmentation:
        if len(polygon) >= 6:
            draw.polygon([float(v) for v in polygon], fill=1)
    return np.asarray(canvas).copy()


def rle_to_mask(counts: list[int], width: int, height: int) -> np.ndarray:
    """Alternating runs (0s first) over the column-major pixels -> bool HxW mask."""
    runs = np.asarray(counts, dtype=np.int64)
    if runs.ndim != 1 or (runs < 0).any() or int(runs.sum()) != width * height:
        raise ValueError(f"RLE counts do not cover a {width}x{height} image")
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(width, height).T.copy()


def decode_rle_string(text: str) -> list[int]:
    """COCO's compressed RLE string -> run lengths.

    Each run is a variable-length signed integer in 5-bit groups (low group first), each group
    stored as ``chr(48 + group)`` with bit 0x20 meaning "more groups follow"; from the fourth run
    on, the stored value is the difference to the run two places before.
    """
    counts: list[int] = []
    position = 0
    while position < len(text):
        value = shift = 0
        more = True
        while more:
            if position >= len(text):
                raise ValueError("RLE string ends inside a number")
            group = ord(text[position]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"bad character {text[position]!r} in RLE string")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift  # sign-extend
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def _load_json(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LdmdataError(f"cannot read COCO annotations {path}: {exc}") from exc
    if not isinstance(content, dict):
        raise LdmdataError(f"{path} is not a COCO annotation file (not a JSON object)")
    return content
