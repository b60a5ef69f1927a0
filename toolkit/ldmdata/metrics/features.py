"""Feature extractors for FID and IS, as torchmetrics custom feature modules.

``inception``: torchmetrics' Inception-v3 (torch-fidelity's FID weights), the study's choice; it
needs the ``torch-fidelity`` package and its weights file on disk (nothing is downloaded).
``clip``: the CLIP image tower of the ``clip`` model role. FID uses its projected image
embeddings; IS uses its zero-shot logits over the 80 COCO object classes ("a photo of a
{class}"), since CLIP has no classifier head. ``auto`` takes Inception when it can load, else
CLIP. The choice is written next to every FID and IS number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ldmdata.errors import LdmdataError
from ldmdata.models.clip import ClipScorer

CHOICES = ("auto", "clip", "inception")
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)


class ClipImageFeatures(nn.Module):
    """CLIP image embeddings of ``N x 3 x H x W`` images (uint8, or float in [0, 1]).

    Preprocessing follows the model's CLIPImageProcessor in torch: shortest side to its size
    (bicubic, antialiased), centre crop, mean/std normalisation.
    """

    def __init__(self, scorer: ClipScorer):
        super().__init__()
        processor = scorer.processor.image_processor
        self.model = scorer.model
        self.shortest = int(processor.size["shortest_edge"])
        self.crop = (int(processor.crop_size["height"]), int(processor.crop_size["width"]))
        self.register_buffer("mean", torch.tensor(processor.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(processor.image_std).view(1, 3, 1, 1))
        self.num_features = int(self.model.config.projection_dim)

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        device = self.mean.device
        x = images.to(device).float()
        if images.dtype == torch.uint8:
            x = x / 255
        height, width = x.shape[-2:]
        scale = self.shortest / min(height, width)
        size = (max(self.shortest, round(height * scale)), max(self.shortest, round(width * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        top, left = (size[0] - self.crop[0]) // 2, (size[1] - self.crop[1]) // 2
        x = x.clamp(0, 1)[..., top: top + self.crop[0], left: left + self.crop[1]]
        return (x - self.mean) / self.std

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(pixel_values=self.pixels(images)).pooler_output.float()


class ClipZeroShotLogits(ClipImageFeatures):
    """CLIP zero-shot class logits (``logit_scale * cosine``) over ``classes``."""

    def __init__(self, scorer: ClipScorer, classes: tuple[str, ...] = COCO_CLASSES):
        super().__init__(scorer)
        tokens = scorer.processor.tokenizer(
            [f"a photo of a {name}" for name in classes], padding=True, truncation=True,
            return_tensors="pt",
        ).to(scorer.device)
        with torch.inference_mode():
            text = self.model.get_text_features(**tokens).pooler_output.float()
        self.register_buffer("text", F.normalize(text, dim=-1).clone())
        self.num_features = len(classes)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image = F.normalize(super().forward(images), dim=-1)
        return self.model.logit_scale.exp().float() * image @ self.text.T


class Precomputed(nn.Module):
    """Identity 'extractor' for features computed once (bootstrap resamples reuse them)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def inception_problem(weights: str | None) -> str | None:
    """Why torchmetrics' Inception cannot load offline here, or None when it can."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return "the torch-fidelity package is not installed"
    path = Path(weights) if weights else inception_weights_path()
    if not path.is_file():
        return f"no Inception weights at {path} (nothing is downloaded offline)"
    return None


def inception_weights_path() -> Path:
    """Where torch-fidelity keeps its Inception weights (torch hub's checkpoint folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def choose_features(choice: str, weights: str | None) -> str:
    """``clip`` or ``inception`` for ``choice`` (``auto`` falls back to CLIP, with no error)."""
    if choice not in CHOICES:
        raise LdmdataError(f"unknown features {choice!r}; choose one of: {', '.join(CHOICES)}")
    problem = inception_problem(weights) if choice != "clip" else None
    if choice == "inception" and problem:
        raise LdmdataError(f"features inception asked for, but {problem}; use features clip")
    if choice == "auto":
        return "clip" if problem else "inception"
    return choice


def inception_modules(weights: str | None) -> tuple[nn.Module, nn.Module]:
    """torchmetrics' Inception for FID (2048-d pool features) and IS (unbiased logits)."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    path = str(weights or inception_weights_path())
    fid = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                             feature_extractor_weights_path=path)
    fid.num_features = 2048
    is_ = NoTrainInceptionV3(name="inception-v3-compat", features_list=["logits_unbiased"],
                             feature_extractor_weights_path=path)
    return fid, is_


def as_uint8(images) -> torch.Tensor:
    """``N x 3 x H x W`` uint8 from same-size RGB PIL images."""
    return torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images])
                            ).permute(0, 3, 1, 2).contiguous()
