"""Inpainting triplets: image + main-entity SAM mask + caption + CLIP-chosen edit prompts.

Per image: caption -> main entity (a source label, or a noun phrase of the caption; several
candidates are ranked by CLIP score as the study ranked COCO classes) -> box from the grounded
detector -> SAM mask from that box -> clean-up (binary, kept inside the box, holes filled)
-> square crop of
``crop_scale`` x the box around the entity, resized to ``size`` -> mask-coverage filter ->
prompts. The mask is 255 on the entity; the study inverts it at edit time so the model
repaints the background and keeps the entity.
"""

from __future__ import annotations

import numpy as np
from datasets import Features, Image, List, Value
from PIL import Image as PILImage
from scipy.ndimage import binary_fill_holes

from ldmdata.build.steps import Models, choose_captions, choose_prompts
from ldmdata.errors import InputRejected
from ldmdata.sources.base import SourceItem
from ldmdata.text import entity_candidates

FEATURES = Features(
    {
        "id": Value("string"),
        "source_id": Value("string"),
        "image": Image(),
        "mask": Image(),
        "caption": Value("string"),
        "captions": List(Value("string")),
        "entity": Value("string"),
        "box": List(Value("float32")),
        "crop_box": List(Value("int32")),
        "mask_fraction": Value("float32"),
        "gt_iou": Value("float32"),
        "prompts": List(Value("string")),
        "prompt_clip_scores": List(Value("float32")),
        "width": Value("int32"),
        "height": Value("int32"),
    }
)


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

    def _entities(
        self, items: list[SourceItem], images: list[PILImage.Image], captions: list[list[str]]
    ) -> list[str | InputRejected]:
        mode = self.settings["entity_from"]
        candidates: list[list[str] | InputRejected] = []
        for item, caps in zip(items, captions, strict=True):
            if item.labels and mode != "caption":
                candidates.append(list(dict.fromkeys(item.labels)))
            elif mode == "source":
                candidates.append(InputRejected("no source label"))
            else:
                candidates.append(entity_candidates(caps[0]))
        ranked = [i for i, c in enumerate(candidates) if isinstance(c, list) and len(c) > 1]
        chosen: list[str | InputRejected] = [
            c[0] if isinstance(c, list) else c for c in candidates
        ]
        if ranked:
            scores = self.models.clip.image_text_scores(
                [images[i] for i in ranked], [candidates[i] for i in ranked]
            )
            for i, row in zip(ranked, scores, strict=True):
                chosen[i] = candidates[i][int(np.argmax(row))]
        return chosen

    def process(
        self, items: list[SourceItem], images: list[PILImage.Image], seeds: list[int]
    ) -> list[dict | InputRejected]:
        s, models = self.settings, self.models
        out: list[dict | InputRejected] = list(choose_captions(
            images, [it.captions for it in items], s, models
        ))
        live = [i for i, r in enumerate(out) if not isinstance(r, InputRejected)]
        entities = self._entities(
            [items[i] for i in live], [images[i] for i in live], [out[i] for i in live]
        )
        work: dict[int, dict] = {}
        for i, entity in zip(live, entities, strict=True):
            if isinstance(entity, InputRejected):
                out[i] = entity
            else:
                work[i] = {"captions": out[i], "entity": entity}
        live = list(work)
        if not live:
            return out
        detections = models.detector.detect(
            [images[i] for i in live], [work[i]["entity"] for i in live]
        )
        for i, det in zip(live, detections, strict=True):
            if det is None:
                out[i] = InputRejected(f"no detection for '{work.pop(i)['entity']}'")
            else:
                work[i]["box"] = det.box
        live = list(work)
        if not live:
            return out
        masks = models.segmenter.segment([images[i] for i in live], [work[i]["box"] for i in live])
        size = s["size"]
        for i, raw in zip(live, masks, strict=True):
            image, mask = images[i], clean_mask(raw, work[i]["box"])
            crop = square_crop_box(work[i]["box"], image.width, image.height, s["crop_scale"])
            gt = items[i].masks.get(work[i]["entity"])
            if gt is not None and gt.shape != mask.shape:
                gt = None  # e.g. an EXIF-rotated COCO file: its annotations no longer align
            mask_image = PILImage.fromarray(mask.astype(np.uint8) * 255, "L")
            mask_out = mask_image.crop(crop).resize((size, size), PILImage.Resampling.NEAREST)
            fraction = float(np.asarray(mask_out).mean() / 255)
            if not s["mask_min"] <= fraction <= s["mask_max"]:
                bound = "<" if fraction < s["mask_min"] else ">"
                limit = s["mask_min"] if bound == "<" else s["mask_max"]
                out[i] = InputRejected(f"mask covers {fraction:.1%} ({bound} {limit:.0%})")
                del work[i]
                continue
            k = size / (crop[2] - crop[0])
            x0, y0, x1, y1 = work[i]["box"]
            work[i].update(
                image=image.crop(crop).resize((size, size), PILImage.Resampling.LANCZOS),
                mask=mask_out,
                crop_box=list(crop),
                box=[
                    min(max((x0 - crop[0]) * k, 0), size), min(max((y0 - crop[1]) * k, 0), size),
                    min(max((x1 - crop[0]) * k, 0), size), min(max((y1 - crop[1]) * k, 0), size),
                ],
                mask_fraction=fraction,
                gt_iou=None if gt is None else mask_iou(mask, gt),
            )
        live = list(work)
        prompts = choose_prompts(
            [work[i]["image"] for i in live], [work[i]["captions"] for i in live],
            [seeds[i] for i in live], s, models,
        )
        for i, chosen in zip(live, prompts, strict=True):
            if isinstance(chosen, InputRejected):
                out[i] = chosen
                continue
            w = work[i]
            out[i] = {
                "source_id": items[i].source_id,
                "image": w["image"],
                "mask": w["mask"],
                "caption": w["captions"][0],
                "captions": w["captions"],
                "entity": w["entity"],
                "box": w["box"],
                "crop_box": w["crop_box"],
                "mask_fraction": w["mask_fraction"],
                "gt_iou": w["gt_iou"],
                "prompts": chosen[0],
                "prompt_clip_scores": chosen[1],
                "width": size,
                "height": size,
            }
        return out
