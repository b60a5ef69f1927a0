"""img2img pairs: the image (centre-cropped square, resized) + caption + edit prompts."""

from __future__ import annotations

from datasets import Features, Image, List, Value
from PIL import Image as PILImage
from PIL import ImageOps

from ldmdata.build.steps import Models, choose_captions, choose_prompts
from ldmdata.errors import InputRejected
from ldmdata.sources.base import SourceItem

FEATURES = Features(
    {
        "id": Value("string"),
        "source_id": Value("string"),
        "image": Image(),
        "caption": Value("string"),
        "captions": List(Value("string")),
        "prompts": List(Value("string")),
        "prompt_clip_scores": List(Value("float32")),
        "width": Value("int32"),
        "height": Value("int32"),
    }
)


def square(image: PILImage.Image, size: int) -> PILImage.Image:
    """The centred square of ``image`` resized to ``size`` (antialiased)."""
    return ImageOps.fit(image, (size, size), PILImage.Resampling.LANCZOS)


def attach_prompts(
    rows: list[dict | InputRejected], pictures: list[PILImage.Image | None], seeds: list[int],
    settings: dict, models: Models, picture_column: str,
) -> list[dict | InputRejected]:
    """Fill ``prompts`` and ``prompt_clip_scores`` of the live rows (scored on their picture)."""
    live = [i for i, r in enumerate(rows) if not isinstance(r, InputRejected)]
    chosen = choose_prompts(
        [pictures[i] for i in live], [rows[i]["captions"] for i in live],
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
        size = self.settings["size"]
        squares = [square(image, size) for image in images]
        captions = choose_captions(squares, [it.captions for it in items], self.settings,
                                   self.models)
        rows: list[dict | InputRejected] = [
            caps if isinstance(caps, InputRejected) else {
                "source_id": item.source_id, "caption": caps[0], "captions": caps,
                "width": size, "height": size,
            }
            for item, caps in zip(items, captions, strict=True)
        ]
        return attach_prompts(rows, squares, seeds, self.settings, self.models, "image")
