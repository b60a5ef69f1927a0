"""The study's image selection: rank a whole source by how well its captions describe it.

As ``data_construction/select_image.ipynb`` of the study did for COCO val2017: for every image,
the CLIP score between the whole image and each of its captions; the mean of the best
``num_captions`` (3) scores; the images ranked by that mean, and the top K kept (the study:
400). Ours lists them best first (ties: source order); images without a caption, or that do
not decode, rank last.
"""

from __future__ import annotations

from itertools import islice

from ldmdata.builders.steps import Models
from ldmdata.builders.text import has_words
from ldmdata.errors import InputRejected
from ldmdata.sources.base import SelectedSource, Source
from ldmdata.sources.decode import load_rgb


def caption_scores(src: Source, settings: dict, models: Models) -> list[float]:
    """Per source position, the mean CLIP score of its best ``num_captions`` captions
    (``-inf`` when it has none or does not decode)."""
    top, scores = settings["num_captions"], []
    items = src.iterate(0)
    while batch := list(islice(items, settings["batch_size"])):
        images, texts, slots = [], [], []
        for item in batch:
            captions = [c for c in item.captions if has_words(c)]
            scores.append(float("-inf"))
            try:
                image = load_rgb(item, settings["max_pixels"], settings["min_side"])
            except InputRejected:
                continue
            if captions:
                images.append(image)
                texts.append(captions)
                slots.append(len(scores) - 1)
        for slot, row in zip(slots, models.clip.image_text_scores(images, texts), strict=True):
            best = sorted(row, reverse=True)[:top]
            scores[slot] = sum(best) / len(best)
    return scores


def select_study(src: Source, k: int, settings: dict, models: Models) -> SelectedSource:
    """The ``k`` best images of ``src`` by :func:`caption_scores`, best first."""
    scores = caption_scores(src, settings, models)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return SelectedSource(src, order, f"study: top {k} of {len(scores)} by caption CLIP score")
