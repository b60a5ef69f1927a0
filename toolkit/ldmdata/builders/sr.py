"""Super-resolution pairs: HR square + LR (bicubic or seeded Real-ESRGAN-style) + caption +
edit prompts. Each row stores the degradation with every parameter drawn for it."""

from __future__ import annotations

import json

from datasets import Features, Image, List, Value
from PIL import Image as PILImage

from ldmdata.builders.degrade import RealEsrganParams, bicubic_lr, realesrgan_lr
from ldmdata.builders.img2img import attach_prompts, resize_to
from ldmdata.builders.settings import captions_needed
from ldmdata.builders.steps import Models, choose_captions, item_rng
from ldmdata.errors import InputRejected
from ldmdata.sources.base import SourceItem

FEATURES = Features(
    {
        "id": Value("string"),
        "source_id": Value("string"),
        "hr": Image(),
        "lr": Image(),
        "scale": Value("int32"),
        "degradation": Value("string"),  # JSON: {"kind": ..., every drawn parameter}
        "caption": Value("string"),
        "captions": List(Value("string")),
        "prompts": List(Value("string")),
        "prompt_clip_scores": List(Value("float32")),
    }
)


class SrBuilder:
    task = "sr"
    features = FEATURES
    image_columns = ("hr", "lr")

    def __init__(self, settings: dict, models: Models):
        self.settings = settings
        self.models = models
        self.ranges = RealEsrganParams.from_dict(settings["realesrgan"])

    def _degrade(self, hr: PILImage.Image, index: int) -> tuple[PILImage.Image, dict]:
        scale = self.settings["scale"]
        if self.settings["degradation"] == "bicubic":
            return bicubic_lr(hr, scale), {"kind": "bicubic", "antialias": True}
        # A stream of its own per input, so the drawn parameters never depend on the batch.
        rng = item_rng(self.settings["seed"] + 1, index)
        lr, drawn = realesrgan_lr(hr, scale, rng, self.ranges)
        return lr, {"kind": "realesrgan", **drawn}

    def process(
        self, items: list[SourceItem], images: list[PILImage.Image], seeds: list[int]
    ) -> list[dict | InputRejected]:
        s = self.settings
        hrs = [resize_to(image, s["size"], s["resize"]) for image in images]
        captions = choose_captions(hrs, [it.captions for it in items], s, self.models,
                                   needed=captions_needed(self.task, s))
        rows: list[dict | InputRejected] = []
        for item, hr, caps in zip(items, hrs, captions, strict=True):
            if isinstance(caps, InputRejected):
                rows.append(caps)
                continue
            lr, degradation = self._degrade(hr, item.index)
            rows.append({
                "source_id": item.source_id, "lr": lr, "scale": s["scale"],
                "degradation": json.dumps(degradation, sort_keys=True),
                "caption": caps[0] if caps else "", "captions": caps,
            })
        return attach_prompts(rows, hrs, items, seeds, s, self.models, "hr")
