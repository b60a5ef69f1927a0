"""CLIP score between images and texts: 100 * max(cosine, 0), as torchmetrics defines it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from ldmdata.models.loading import load_pretrained
from ldmdata.models.refs import ModelRef


class ClipScorer:
    """Scores every text of ``texts[i]`` against image ``i``, all texts in one batch."""

    def __init__(self, ref: ModelRef, device: str = "cpu"):
        self.ref = ref
        self.device = torch.device(device)
        self.processor = load_pretrained(CLIPProcessor, ref, weights=False)
        self.model = load_pretrained(CLIPModel, ref).to(self.device).eval()
        image_processor = self.processor.image_processor
        self.shortest = int(image_processor.size["shortest_edge"])
        self.resample = Image.Resampling(int(image_processor.resample))

    def _resize(self, image: Image.Image) -> Image.Image:
        """Shortest side to the processor's size (PIL, cheap); it then only center-crops."""
        width, height = image.size
        scale = self.shortest / min(width, height)
        size = (max(self.shortest, round(width * scale)), max(self.shortest, round(height * scale)))
        return image.convert("RGB").resize(size, self.resample, reducing_gap=2.0)

    @torch.inference_mode()
    def image_text_scores(
        self, images: Sequence[Image.Image], texts: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """For image i, the CLIP score of each text in ``texts[i]`` (in [0, 100])."""
        if len(images) != len(texts):
            raise ValueError(f"got {len(images)} images but {len(texts)} lists of texts")
        flat = [text for group in texts for text in group]
        if not flat:
            return [[] for _ in images]
        pixels = self.processor.image_processor(
            images=[self._resize(image) for image in images], return_tensors="pt"
        )["pixel_values"]
        tokens = self.processor.tokenizer(
            flat, padding=True, truncation=True, return_tensors="pt"
        ).to(self.device)
        image_emb = self.model.get_image_features(pixel_values=pixels.to(self.device)).pooler_output
        text_emb = self.model.get_text_features(**tokens).pooler_output
        image_emb = torch.nn.functional.normalize(image_emb.float(), dim=-1)
        text_emb = torch.nn.functional.normalize(text_emb.float(), dim=-1)
        owner = [i for i, group in enumerate(texts) for _ in group]
        cosine = (image_emb[owner] * text_emb).sum(dim=-1)
        scores = (100.0 * cosine).clamp(min=0.0).tolist()
        out, start = [], 0
        for group in texts:
            out.append(scores[start : start + len(group)])
            start += len(group)
        return out
