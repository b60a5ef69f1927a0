"""img2img pairs: the image (centre-cropped square or squashed, resized) + caption + edit
prompts (written and chosen by CLIP, or the source's own)."""

from __future__ import annotations

from datasets import Features, Image, List, Value
from PIL import Image as PILImage
from PIL import ImageOps

from ldmdata.builders.settings import captions_needed
from ldmdata.builders.steps import Models, choose_captions, prompts_for
from ldmdata.errors import InputRejected
from ldmdata.sources.base import SourceItem

FEATURES = Features(
    {
        "id": Value("string"),
        "source_id": Value("string"),
        "image": Image(),
        "caption": Value("string"),  # "" when no caption was needed nor given
        "captions": List(Value("string")),
        "prompts": List(Value("string")),
        "prompt_clip_scores": List(Value("float32")),
        "width": Value("int32"),
        "height": Value("int32"),
    }
)


def resize_to(image: PILImage.Image, size: int, how: str) -> PILImage.Image:
    """``image`` as a ``size`` square: ``center_crop`` takes the centred square (antialiased
    Lanczos); ``squash`` resizes the whole image, aspect not kept, with PIL's default bicubic
    filter, as the study's notebooks did (``Image.resize((512, 512))``)."""
    if how == "squash":
        return image.resize((size, size), PILImage.Resampling.BICUBIC)
    return ImageOps.fit(image, (size, size), PILImage.Resampling.LANCZOS)


def attach_prompts(
    rows: list[dict | InputRejected], pictures: list[PILImage.Image | None],
    items: list[SourceItem], seeds: list[int], settings: dict, models: Models,
    picture_column: str,
) -> list[dict | InputRejected]:
    """Fill ``prompts`` and ``prompt_clip_scores`` of the live rows (scored on their picture)."""
    live = [i for i, r in enumerate(rows) if not isinstance(r, InputRejected)]
    chosen = prompts_for(
        [pictures[i] for i in live], [items[i] for i in live], [rows[i]["captions"] for i in live],
        [seeds[i] for i in live], settings, models,
    )
    for i, result in zip(live, chosen, strict=True):
        if isinstance(result, InputRejected):
            rows[i] = result
        else:
            rows[i].update(prompts=result[0], prompt_clip_scores=result[1])
            rows[i][picture_column] = pictures[i]
    return rows


class Img2ImgBuilder:
    task = "img2img"
    features = FEATURES
    image_columns = ("image",)

    def __init__(self, settings: dict, models: Models):
        self.settings = settings
        self.models = models

    def process(
        self, items: list[SourceItem], images: list[PILImage.Image], seeds: list[int]
    ) -> list[dict | InputRejected]:
        s, size = self.settings, self.settings["size"]
        pictures = [resize_to(image, size, s["resize"]) for image in images]
        captions = choose_captions(pictures, [it.captions for it in items], s, self.models,
                                   needed=captions_needed(self.task, s))
        rows: list[dict | InputRejected] = [
            caps if isinstance(caps, InputRejected) else {
                "source_id": item.source_id, "caption": caps[0] if caps else "",
                "captions": caps, "width": size, "height": size,
            }
            for item, caps in zip(items, captions, strict=True)
        ]
        return attach_prompts(rows, pictures, items, seeds, s, self.models, "image")
