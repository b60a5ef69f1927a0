"""Inpainting triplets: image + main-entity mask + caption + edit prompts.

Masks come from our models (``mask_from: model``) or from the source (``mask_from: source``).
Model masks, per image: caption -> main entity (a source label, or a noun phrase of the
caption; several candidates are ranked by CLIP score as the study ranked COCO classes) -> box
from the grounded detector -> SAM mask from that box -> clean-up (binary, kept inside the box,
holes filled) -> mask-coverage filter. Source masks: a curated benchmark's crop and mask as
given (the study's folder), or the main class (by CLIP score among the source's labels) with
its instance masks (COCO, by the study's rule; see :func:`one_object`) or its exact mask
(synthetic). Then a crop of ``crop_scale`` x the box around the entity (square and moved inside
the image under ``resize: center_crop``; clipped at the border under ``squash``, the study's)
resized to ``size``. The mask is 255 on the entity; the study inverts it at edit time so the
model repaints the background and keeps the entity.
"""

from __future__ import annotations

import re

import numpy as np
from datasets import Features, Image, List, Value
from PIL import Image as PILImage
from PIL import ImageOps
from scipy.ndimage import binary_fill_holes

from ldmdata.builders.settings import captions_needed
from ldmdata.builders.steps import Models, choose_captions, prompts_for
from ldmdata.builders.text import entity_candidates
from ldmdata.errors import InputRejected
from ldmdata.sources.base import SourceItem
from ldmdata.sources.decode import load_rgb

FEATURES = Features(
    {
        "id": Value("string"),
        "source_id": Value("string"),
        "image": Image(),
        "mask": Image(),
        "caption": Value("string"),  # "" when no caption was needed nor given
        "captions": List(Value("string")),
        "entity": Value("string"),  # "" for a benchmark's unlabelled mask
        "box": List(Value("float32")),
        "crop_box": List(Value("int32")),
        "mask_fraction": Value("float32"),
        "gt_iou": Value("float32"),  # a model mask's IoU with the source's mask of its entity
        "prompts": List(Value("string")),
        "prompt_clip_scores": List(Value("float32")),
        "width": Value("int32"),
        "height": Value("int32"),
    }
)

# The study's test for prompts that name several objects (``judge_one_object`` in its
# ``generate_mask_filter_image`` notebook): then the whole class is masked, else one instance.
PLURAL_WORDS = ("two", "three", "four", "five", "six", "seven", "multiple", "group", "various",
                "several")
_PLURAL = re.compile(r"\b(" + "|".join(PLURAL_WORDS) + r")\b", re.IGNORECASE)
MASK_THRESHOLD = 128  # a resized mask is the entity where it is at least this bright


def one_object(texts: list[str]) -> bool:
    """True unless a text has one of :data:`PLURAL_WORDS` as a whole word. We test the image's
    chosen captions (known before the crop; the study tested its final prompts, which continue
    those captions) and whole words (the study matched substrings, so "network" counted)."""
    return not any(_PLURAL.search(text) for text in texts)


def square_crop_box(
    box: tuple[float, float, float, float], width: int, height: int, scale: float
) -> tuple[int, int, int, int]:
    """A square of ``scale`` x the box's longer side centred on the box, moved (and if need
    be shrunk) to lie inside the image."""
    x0, y0, x1, y1 = box
    side = int(round(min(max(scale * max(x1 - x0, y1 - y0), 1.0), width, height)))
    left = int(round((x0 + x1) / 2 - side / 2))
    top = int(round((y0 + y1) / 2 - side / 2))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side


def clipped_crop_box(
    box: tuple[float, float, float, float], width: int, height: int, scale: float
) -> tuple[int, int, int, int]:
    """The study's crop (``crop_image`` in its notebook): a square of ``scale`` x the box's
    longer side around the box centre, all in whole pixels (truncated), cut at the image
    border, so possibly not square."""
    left, top, right, bottom = (int(v) for v in box)
    side = int(max(bottom - top, right - left) * scale)
    cx, cy = (left + right) // 2, (top + bottom) // 2
    x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
    x1, y1 = min(width, cx + side // 2), min(height, cy + side // 2)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def fit_pair(
    image: PILImage.Image, mask: PILImage.Image, size: int, how: str
) -> tuple[PILImage.Image, PILImage.Image]:
    """Image and L mask (white on the entity) as ``size`` squares, the mask binarised at
    :data:`MASK_THRESHOLD` after resizing (0 or 255). ``squash``: both resized with PIL's
    default bicubic filter, aspect not kept, as the study's notebooks did; ``center_crop``: the
    centred square, Lanczos for the image and nearest for the mask."""
    if how == "squash":
        picture = image.resize((size, size), PILImage.Resampling.BICUBIC)
        resized = mask.resize((size, size), PILImage.Resampling.BICUBIC)
    else:
        picture = ImageOps.fit(image, (size, size), PILImage.Resampling.LANCZOS)
        resized = ImageOps.fit(mask, (size, size), PILImage.Resampling.NEAREST)
    return picture, resized.point(lambda v: 255 if v >= MASK_THRESHOLD else 0)


def class_mask(
    item: SourceItem, label: str, captions: list[str]
) -> tuple[np.ndarray, tuple[float, ...]] | None:
    """The source's mask of class ``label`` and its box: the union of its instances (their
    boxes' union), or only the largest one when the captions speak of one object
    (:func:`one_object`), as the study did; else the label's exact mask (synthetic)."""
    mine = [inst for inst in item.instances if inst.label == label]
    if mine:
        mine = mine[:1] if one_object(captions) else mine
        boxes = np.asarray([inst.box for inst in mine])
        box = (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0))
        return np.logical_or.reduce([inst.mask for inst in mine]), tuple(map(float, box))
    if label in item.masks:
        return item.masks[label], tuple(mask_bounds(item.masks[label]))
    return None


def mask_bounds(mask: np.ndarray) -> list[float]:
    """(x0, y0, x1, y1) of the true pixels; zeros for an empty mask."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def clean_mask(mask: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Binary mask, kept inside its prompt box (SAM's box-prompted masks can leak past the
    entity into the background), with its holes filled."""
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    clean = np.zeros(mask.shape, dtype=bool)
    clean[y0:y1, x0:x1] = binary_fill_holes(mask[y0:y1, x0:x1].astype(bool))
    return clean


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


class InpaintBuilder:
    task = "inpaint"
    features = FEATURES
    image_columns = ("image", "mask")

    def __init__(self, settings: dict, models: Models):
        self.settings = settings
        self.models = models

    def _best_label(
        self, images: list[PILImage.Image], candidates: list[list[str]]
    ) -> list[str]:
        """Per image, its candidate with the highest CLIP score (the only one, without CLIP)."""
        candidates = [list(dict.fromkeys(c)) for c in candidates]
        chosen = [c[0] for c in candidates]
        ranked = [i for i, c in enumerate(candidates) if len(c) > 1]
        if ranked:
            scores = self.models.clip.image_text_scores(
                [images[i] for i in ranked], [candidates[i] for i in ranked]
            )
            for i, row in zip(ranked, scores, strict=True):
                chosen[i] = candidates[i][int(np.argmax(row))]
        return chosen

    def _entities(
        self, items: list[SourceItem], images: list[PILImage.Image], captions: list[list[str]]
    ) -> list[str | InputRejected]:
        """The entity a model mask is made for: the best source label, or caption phrase."""
        mode = self.settings["entity_from"]
        from_labels = [bool(item.labels) and mode != "caption" for item in items]
        out: list[str | InputRejected] = [
            InputRejected("no source label") if not use and mode == "source" else ""
            for use in from_labels
        ]
        live = [i for i, e in enumerate(out) if not isinstance(e, InputRejected)]
        candidates = [
            items[i].labels if from_labels[i] else entity_candidates(captions[i][0]) for i in live
        ]
        for i, label in zip(live, self._best_label([images[i] for i in live], candidates),
                            strict=True):
            out[i] = label
        return out

    def _model_regions(
        self, items: list[SourceItem], images: list[PILImage.Image], captions: list[list[str]]
    ) -> list[dict | InputRejected]:
        """Entity -> detector box -> SAM mask (cleaned) -> crop, per image."""
        s, models = self.settings, self.models
        out: list[dict | InputRejected] = list(self._entities(items, images, captions))
        live = [i for i, e in enumerate(out) if not isinstance(e, InputRejected)]
        if not live:
            return out
        detections = models.detector.detect([images[i] for i in live], [out[i] for i in live])
        boxes = {}
        for i, det in zip(live, detections, strict=True):
            if det is None:
                out[i] = InputRejected(f"no detection for '{out[i]}'")
            else:
                boxes[i] = det.box
        live = list(boxes)
        if not live:
            return out
        masks = models.segmenter.segment([images[i] for i in live], [boxes[i] for i in live])
        for i, raw in zip(live, masks, strict=True):
            mask = clean_mask(raw, boxes[i])
            gt = items[i].masks.get(out[i])
            if gt is not None and gt.shape != mask.shape:
                gt = None  # e.g. an EXIF-rotated COCO file: its annotations no longer align
            region = self._crop(images[i], mask, boxes[i], out[i])
            fraction = region["mask_fraction"]
            if not s["mask_min"] <= fraction <= s["mask_max"]:
                bound = "<" if fraction < s["mask_min"] else ">"
                limit = s["mask_min"] if bound == "<" else s["mask_max"]
                out[i] = InputRejected(f"mask covers {fraction:.1%} ({bound} {limit:.0%})")
                continue
            out[i] = {**region, "gt_iou": None if gt is None else mask_iou(mask, gt)}
        return out

    def _source_regions(
        self, items: list[SourceItem], images: list[PILImage.Image], captions: list[list[str]]
    ) -> list[dict | InputRejected]:
        """The source's own mask per image: a benchmark's crop and mask as given, or the main
        class's instances (COCO) or exact mask (synthetic), cropped around them."""
        out: list[dict | InputRejected] = [InputRejected("no source mask") for _ in items]
        labelled = [i for i, it in enumerate(items) if it.mask_data is None and it.labels]
        entities = self._best_label([images[i] for i in labelled],
                                    [items[i].labels for i in labelled])
        for i, entity in zip(labelled, entities, strict=True):
            item = items[i]
            found = class_mask(item, entity, captions[i])
            if found is None:
                out[i] = InputRejected(f"no source mask for '{entity}'")
                continue
            mask, box = found
            if mask.shape != images[i].size[::-1]:
                out[i] = InputRejected("source mask does not match the image size")
                continue
            out[i] = {**self._crop(images[i], mask, box, entity), "gt_iou": None}
        for i, item in enumerate(items):
            if item.mask_data is not None:
                out[i] = self._given_region(item, images[i])
        return out

    def _given_region(self, item: SourceItem, image: PILImage.Image) -> dict | InputRejected:
        """A benchmark's crop and its mask file (white on the entity), resized to ``size``."""
        try:
            mask = load_rgb(
                SourceItem(item.index, item.source_id, data=item.mask_data),
                max_pixels=self.settings["max_pixels"], min_side=1,
            ).convert("L")
        except InputRejected as rejected:
            return InputRejected(f"mask: {rejected.reason}")
        if mask.size != image.size:
            return InputRejected(f"mask size {mask.size} differs from the image's {image.size}")
        picture, mask_out = fit_pair(image, mask, self.settings["size"], self.settings["resize"])
        binary = np.asarray(mask_out) > 0
        return {"image": picture, "mask": mask_out, "entity": "", "box": mask_bounds(binary),
                "crop_box": [0, 0, image.width, image.height],
                "mask_fraction": float(binary.mean()), "gt_iou": None}

    def _crop(
        self, image: PILImage.Image, mask: np.ndarray, box: tuple, entity: str
    ) -> dict:
        """The crop of ``crop_scale`` x ``box`` (square or clipped, per ``resize``) of image and
        mask, resized to ``size``; ``box`` mapped into it."""
        s, size = self.settings, self.settings["size"]
        make_box = clipped_crop_box if s["resize"] == "squash" else square_crop_box
        crop = make_box(box, image.width, image.height, s["crop_scale"])
        mask_image = PILImage.fromarray(mask.astype(np.uint8) * 255, "L")
        picture, mask_out = fit_pair(image.crop(crop), mask_image.crop(crop), size, s["resize"])
        kx, ky = size / (crop[2] - crop[0]), size / (crop[3] - crop[1])
        x0, y0, x1, y1 = box
        return {
            "image": picture, "mask": mask_out, "entity": entity, "crop_box": list(crop),
            "box": [min(max((x0 - crop[0]) * kx, 0), size), min(max((y0 - crop[1]) * ky, 0), size),
                    min(max((x1 - crop[0]) * kx, 0), size), min(max((y1 - crop[1]) * ky, 0), size)],
            "mask_fraction": float(np.asarray(mask_out).mean() / 255),
        }

    def process(
        self, items: list[SourceItem], images: list[PILImage.Image], seeds: list[int]
    ) -> list[dict | InputRejected]:
        s, models = self.settings, self.models
        out: list[dict | InputRejected] = list(choose_captions(
            images, [it.captions for it in items], s, models, needed=captions_needed(self.task, s)
        ))
        live = [i for i, r in enumerate(out) if not isinstance(r, InputRejected)]
        regions_of = self._source_regions if s["mask_from"] == "source" else self._model_regions
        regions = regions_of([items[i] for i in live], [images[i] for i in live],
                             [out[i] for i in live]) if live else []
        work: dict[int, dict] = {}
        for i, region in zip(live, regions, strict=True):
            if isinstance(region, InputRejected):
                out[i] = region
            else:
                work[i] = {**region, "captions": out[i]}
        live = list(work)
        if not live:
            return out
        prompts = prompts_for(
            [work[i]["image"] for i in live], [items[i] for i in live],
            [work[i]["captions"] for i in live], [seeds[i] for i in live], s, models,
        )
        size = s["size"]
        for i, chosen in zip(live, prompts, strict=True):
            if isinstance(chosen, InputRejected):
                out[i] = chosen
                continue
            w = work[i]
            out[i] = {
                "source_id": items[i].source_id, "image": w["image"], "mask": w["mask"],
                "caption": w["captions"][0] if w["captions"] else "", "captions": w["captions"],
                "entity": w["entity"], "box": w["box"], "crop_box": w["crop_box"],
                "mask_fraction": w["mask_fraction"], "gt_iou": w["gt_iou"],
                "prompts": chosen[0], "prompt_clip_scores": chosen[1],
                "width": size, "height": size,
            }
        return out
