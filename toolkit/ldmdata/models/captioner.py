"""Image captioning with BLIP (``BlipForConditionalGeneration``): batched, greedy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import BlipForConditionalGeneration, BlipProcessor

from ldmdata.models.loading import load_pretrained
from ldmdata.models.refs import ModelRef


class Captioner:
    """Greedy (deterministic) captions for a batch of images."""

    def __init__(self, ref: ModelRef, device: str = "cpu", max_new_tokens: int = 30):
        self.ref = ref
        self.device = torch.device(device)
        self.max_new_tokens = max_new_tokens
        self.processor = load_pretrained(BlipProcessor, ref, weights=False)
        self.model = load_pretrained(BlipForConditionalGeneration, ref).to(self.device).eval()
        image_processor = self.processor.image_processor
        self.size = (int(image_processor.size["width"]), int(image_processor.size["height"]))
        self.resample = Image.Resampling(int(image_processor.resample))

    @torch.inference_mode()
    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One stripped caption per image."""
        if not images:
            return []
        # BLIP resizes to a fixed square; doing it here (PIL, fast) leaves the processor a no-op.
        small = [
            image.convert("RGB").resize(self.size, self.resample, reducing_gap=2.0)
            for image in images
        ]
        pixel_values = self.processor(images=small, return_tensors="pt")["pixel_values"]
        tokens = self.model.generate(
            pixel_values=pixel_values.to(self.device),
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
        )
        texts = self.processor.batch_decode(tokens, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]
