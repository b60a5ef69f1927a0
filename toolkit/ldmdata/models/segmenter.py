"""Box-prompted segmentation with SAM: transformers' SamModel or the official segment-anything.

Both backends return, per image, the multimask output with the highest predicted IoU as a bool
array of the image's own size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from transformers import SamModel, SamProcessor

from ldmdata.errors import LdmdataError
from ldmdata.models.loading import check_loadable, load_error, load_pretrained
from ldmdata.models.refs import ModelRef

Box = tuple[float, float, float, float]
BACKENDS = ("transformers", "segment-anything")


def _check_inputs(images: Sequence[Image.Image], boxes: Sequence[Box]) -> None:
    if len(images) != len(boxes):
        raise ValueError(f"got {len(images)} images but {len(boxes)} boxes")


def _longest_side_shape(height: int, width: int, longest: int) -> tuple[int, int]:
    """(h, w) after resizing the longest side to ``longest`` (SAM's rounding)."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class SamSegmenter:
    """transformers ``SamModel`` with one box prompt per image, batched."""

    def __init__(self, ref: ModelRef, device: str = "cpu"):
        self.ref = ref
        self.device = torch.device(device)
        self.processor = load_pretrained(SamProcessor, ref, weights=False)
        self.model = load_pretrained(SamModel, ref).to(self.device).eval()
        image_processor = self.processor.image_processor
        self.longest = int(image_processor.size["longest_edge"])
        self.pad = (int(image_processor.pad_size["height"]), int(image_processor.pad_size["width"]))
        self.resample = Image.Resampling(int(image_processor.resample))

    @torch.inference_mode()
    def segment(self, images: Sequence[Image.Image], boxes: Sequence[Box]) -> list[np.ndarray]:
        """One bool HxW mask per (image, box); boxes are (x0, y0, x1, y1) image pixels."""
        _check_inputs(images, boxes)
        if not images:
            return []
        small, small_boxes, shapes = [], [], []
        for image, box in zip(images, boxes, strict=True):
            width, height = image.size
            h, w = _longest_side_shape(height, width, self.longest)
            # Resize here (cheap, PIL) so the processor's own resize is a no-op at the same size.
            small.append(image.convert("RGB").resize((w, h), self.resample, reducing_gap=2.0))
            sx, sy = w / width, h / height
            small_boxes.append([[box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]])
            shapes.append((h, w, height, width))
        inputs = self.processor(images=small, input_boxes=small_boxes, return_tensors="pt")
        outputs = self.model(
            pixel_values=inputs["pixel_values"].to(self.device),
            input_boxes=inputs["input_boxes"].to(self.device),
            multimask_output=True,
        )
        scores = outputs.iou_scores[:, 0]  # (B, 3)
        best = scores.argmax(dim=-1)
        low_res = outputs.pred_masks[torch.arange(len(small)), 0, best]  # (B, h, w)
        padded = F.interpolate(low_res[:, None].float(), self.pad, mode="bilinear")
        masks = []
        for i, (h, w, height, width) in enumerate(shapes):
            crop = padded[i : i + 1, :, :h, :w]
            full = F.interpolate(crop, (height, width), mode="bilinear")
            masks.append((full[0, 0] > 0).cpu().numpy())
        return masks


def _official():
    """The segment-anything package (it imports torchvision); one clear line if it cannot load."""
    try:
        import segment_anything
        from segment_anything import modeling
    except Exception as exc:  # ImportError, or torchvision failing to load next to torch
        raise LdmdataError(
            "the segment-anything backend needs the segment-anything package and a working "
            f"torchvision: {type(exc).__name__}: {exc}"
        ) from exc
    return segment_anything, modeling


def build_official_sam(config: dict[str, Any]) -> torch.nn.Module:
    """An official ``Sam`` with the dims in ``config`` (see tiny.vision.OFFICIAL_TINY_CONFIG)."""
    _, modeling = _official()
    img_size, patch = int(config["img_size"]), int(config["patch_size"])
    embed = int(config["prompt_embed_dim"])
    grid = img_size // patch
    sam = modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=int(config["encoder_depth"]),
            embed_dim=int(config["encoder_embed_dim"]),
            img_size=img_size,
            mlp_ratio=float(config["mlp_ratio"]),
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=int(config["encoder_num_heads"]),
            patch_size=patch,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(config["encoder_global_attn_indexes"]),
            window_size=int(config["window_size"]),
            out_chans=embed,
        ),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=embed,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=int(config["mask_in_chans"]),
        ),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(
                depth=int(config["decoder_depth"]),
                embedding_dim=embed,
                mlp_dim=int(config["decoder_mlp_dim"]),
                num_heads=int(config["decoder_num_heads"]),
            ),
            transformer_dim=embed,
            iou_head_depth=3,
            iou_head_hidden_dim=int(config["iou_head_hidden_dim"]),
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


# Image-encoder width of each official checkpoint -> its registry name.
_OFFICIAL_BY_WIDTH = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Weights from safetensors, or an official .pth read with ``weights_only=True`` (no pickle)."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError("the checkpoint does not hold a state dict")
    return state


class OfficialSamSegmenter:
    """The official segment-anything ``Sam`` with box prompts, batched through ``Sam.forward``.

    ``ref.id`` is a folder with ``config.json`` (dims) + ``model.safetensors`` (the tiny set), or an
    official checkpoint file (``sam_vit_h_4b8939.pth``, ``.safetensors``); its variant is read
    from the weights' image-encoder width.
    """

    def __init__(self, ref: ModelRef, device: str = "cpu"):
        self.ref = ref
        self.device = torch.device(device)
        check_loadable(ref)
        segment_anything, _ = _official()
        path = Path(ref.id).expanduser()
        try:
            if path.is_dir():
                config = json.loads((path / "config.json").read_text())
                model = build_official_sam(config)
                state = load_file(str(path / "model.safetensors"))
            else:
                state = _read_weights(path)
                width = state["image_encoder.patch_embed.proj.weight"].shape[0]
                if width not in _OFFICIAL_BY_WIDTH:
                    raise ValueError(f"unknown image-encoder width {width}")
                model = segment_anything.sam_model_registry[_OFFICIAL_BY_WIDTH[width]]()
            model.load_state_dict(state, strict=True)
        except LdmdataError:
            raise
        except Exception as exc:  # unreadable or mismatched weights/config
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no details"
            raise load_error(ref, f"{type(exc).__name__}: {first[:200]}") from exc
        self.model = model.to(self.device).eval()
        from segment_anything.utils.transforms import ResizeLongestSide

        self.transform = ResizeLongestSide(self.model.image_encoder.img_size)

    def segment(self, images: Sequence[Image.Image], boxes: Sequence[Box]) -> list[np.ndarray]:
        """One bool HxW mask per (image, box); boxes are (x0, y0, x1, y1) image pixels."""
        _check_inputs(images, boxes)
        if not images:
            return []
        batch = []
        for image, box in zip(images, boxes, strict=True):
            size = (image.height, image.width)
            h, w = self.transform.get_preprocess_shape(*size, self.transform.target_length)
            # ResizeLongestSide.apply_image's bilinear resize, done by PIL with a fast reduce step.
            small = image.convert("RGB").resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
            resized = torch.from_numpy(np.array(small)).to(self.device)
            box_t = torch.tensor([box], dtype=torch.float32, device=self.device)
            batch.append(
                {
                    "image": resized.permute(2, 0, 1).contiguous(),
                    "original_size": size,
                    "boxes": self.transform.apply_boxes_torch(box_t, size),
                }
            )
        outputs = self.model(batch, multimask_output=True)
        masks = []
        for out in outputs:
            best = int(out["iou_predictions"][0].argmax())
            masks.append(out["masks"][0, best].cpu().numpy().astype(bool))
        return masks

    def automatic_mask_generator(self, **kwargs: Any):
        """The official ``SamAutomaticMaskGenerator`` on this model (kwargs go to it)."""
        segment_anything, _ = _official()
        return segment_anything.SamAutomaticMaskGenerator(self.model, **kwargs)


def load_segmenter(
    ref: ModelRef,
    backend: Literal["transformers", "segment-anything"] = "transformers",
    device: str = "cpu",
) -> SamSegmenter | OfficialSamSegmenter:
    """The segmenter for ``backend``."""
    if backend == "transformers":
        return SamSegmenter(ref, device=device)
    if backend == "segment-anything":
        return OfficialSamSegmenter(ref, device=device)
    choices = ", ".join(BACKENDS)
    raise LdmdataError(f"unknown segmenter backend {backend!r}; choose one of: {choices}")
