"""Open-vocabulary detection with OWLv2: the best box for one text query per image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import Owlv2ForObjectDetection, Owlv2Processor

from ldmdata.models.loading import load_pretrained
from ldmdata.models.refs import ModelRef

# A box narrower or lower than this (pixels, after clipping to the image) is degenerate.
MIN_BOX_SIDE = 1.0


@dataclass(frozen=True)
class Detection:
    """``box`` is (x0, y0, x1, y1) in pixels of the image it was found in."""

    box: tuple[float, float, float, float]
    score: float


class Detector:
    """``Owlv2ForObjectDetection`` with one text query per image, batched."""

    def __init__(self, ref: ModelRef, device: str = "cpu", threshold: float = 0.1):
        self.ref = ref
        self.device = torch.device(device)
        self.threshold = threshold
        self.processor = load_pretrained(Owlv2Processor, ref, weights=False)
        self.model = load_pretrained(Owlv2ForObjectDetection, ref).to(self.device).eval()
        image_processor = self.processor.image_processor
        self.side = int(image_processor.size["height"])
        self.resample = Image.Resampling(int(image_processor.resample))

    @torch.inference_mode()
    def detect(
        self, images: Sequence[Image.Image], queries: Sequence[str]
    ) -> list[Detection | None]:
        """The highest-scoring non-degenerate box above the threshold per image, else None."""
        if len(images) != len(queries):
            raise ValueError(f"got {len(images)} images but {len(queries)} queries")
        if not images:
            return []
        # OWLv2 pads to a square (bottom/right) and resizes it to side x side. Resizing the longest
        # side to `side` here (PIL, cheap) leaves the processor only the padding to do.
        small, scales = [], []
        for image in images:
            width, height = image.size
            scale = self.side / max(width, height)
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            small.append(image.convert("RGB").resize((w, h), self.resample, reducing_gap=2.0))
            scales.append((width / w, height / h, width, height))
        inputs = self.processor(
            text=[[query] for query in queries], images=small, return_tensors="pt", truncation=True
        ).to(self.device)
        outputs = self.model(**inputs)
        # Boxes in pixels of the padded side x side input, then mapped back to each image.
        results = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.threshold, target_sizes=[(self.side, self.side)] * len(small)
        )
        return [self._best(result, scale) for result, scale in zip(results, scales, strict=True)]

    @staticmethod
    def _best(result: dict, scale: tuple[float, float, int, int]) -> Detection | None:
        sx, sy, width, height = scale
        boxes = result["boxes"].float().cpu()
        scores = result["scores"].float().cpu()
        for i in torch.argsort(scores, descending=True, stable=True).tolist():
            x0, y0, x1, y1 = boxes[i].tolist()
            x0, x1 = min(max(x0 * sx, 0.0), width), min(max(x1 * sx, 0.0), width)
            y0, y1 = min(max(y0 * sy, 0.0), height), min(max(y1 * sy, 0.0), height)
            if x1 - x0 >= MIN_BOX_SIDE and y1 - y0 >= MIN_BOX_SIDE:
                return Detection((x0, y0, x1, y1), float(scores[i]))
        return None
