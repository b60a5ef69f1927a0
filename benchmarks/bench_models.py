"""Throughput of the full-size dataset-building models, random weights (no download).

Builds BLIP-large, OWLv2-B/16, SAM ViT-H and CLIP ViT-B/16 from configs with the real sizes
(compute does not depend on the weights) and times one batched forward of each, as the
builders call them, on the chosen device:

    python benchmarks/bench_models.py --device cuda --batch 32 --dtype float16
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import (
    BlipConfig,
    BlipForConditionalGeneration,
    CLIPConfig,
    CLIPModel,
    Owlv2Config,
    Owlv2ForObjectDetection,
    SamConfig,
    SamModel,
)

SAM_VIT_H = {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16,
             "global_attn_indexes": [7, 15, 23, 31], "mlp_dim": 5120}
BLIP_LARGE_VISION = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                     "intermediate_size": 4096, "image_size": 384, "patch_size": 16}


def full_size_models() -> dict:
    """role -> model: the four builder models at their real sizes, random weights.

    Build under ``with torch.device("cuda"):`` to initialise on the GPU.
    """
    return {
        "captioner": BlipForConditionalGeneration(BlipConfig(vision_config=BLIP_LARGE_VISION)),
        "detector": Owlv2ForObjectDetection(
            Owlv2Config(vision_config={"image_size": 960, "patch_size": 16})),
        "segmenter": SamModel(SamConfig(vision_config=SAM_VIT_H)),
        "clip": CLIPModel(CLIPConfig(vision_config={"patch_size": 16, "image_size": 224})),
    }


def tiny_models(tiny_dir) -> dict:
    """role -> model: the same four classes from the tiny model set (CPU smoke runs)."""
    classes = {"captioner": BlipForConditionalGeneration, "detector": Owlv2ForObjectDetection,
               "segmenter": SamModel, "clip": CLIPModel}
    return {role: cls.from_pretrained(f"{tiny_dir}/{role}") for role, cls in classes.items()}


def workloads(built: dict, device, dtype) -> list:
    """(name, model, inputs(batch) -> kwargs, call) for each builder model, as the builders
    call them; image sizes come from each model's config."""

    def side(role):
        return built[role].config.vision_config.image_size

    def pixels(batch, size):
        return torch.randn(batch, 3, size, size, device=device, dtype=dtype)

    def tokens(role, batch, length):
        vocab = built[role].config.text_config.vocab_size
        return torch.randint(0, min(vocab, 1000), (batch, length), device=device)

    sam = side("segmenter")
    box = [[[sam * 0.1, sam * 0.1, sam * 0.6, sam * 0.6]]]
    return [
        (f"captioner BLIP (30 tokens, {side('captioner')} px)", built["captioner"],
         lambda b: {"pixel_values": pixels(b, side("captioner")), "max_new_tokens": 30,
                    "min_new_tokens": 30},
         "generate"),
        (f"detector OWLv2 ({side('detector')} px)", built["detector"],
         lambda b: {"pixel_values": pixels(b, side("detector")),
                    "input_ids": tokens("detector", b, 16),
                    "attention_mask": torch.ones(b, 16, dtype=torch.long, device=device)},
         "forward"),
        (f"segmenter SAM ({sam} px, 1 box)", built["segmenter"],
         lambda b: {"pixel_values": pixels(b, sam),
                    "input_boxes": torch.tensor(box * b, device=device, dtype=dtype)},
         "forward"),
        (f"CLIP (1 image x 15 prompts, {side('clip')} px)", built["clip"],
         lambda b: {"pixel_values": pixels(b, side("clip")),
                    "input_ids": tokens("clip", 15 * b, 32)},
         "clip"),
    ]


def run(model, kwargs, call):
    if call == "generate":
        return model.generate(**kwargs)
    if call == "clip":
        model.get_image_features(pixel_values=kwargs["pixel_values"])
        return model.get_text_features(input_ids=kwargs["input_ids"])
    return model(**kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}, batch {args.batch}, {args.dtype}")
    print(f"{'model':<40} {'s/batch':>8} {'samples/s':>10} {'peak GiB':>9}")
    total = 0.0
    with torch.device(device):
        built = full_size_models()
    for label, model, inputs, call in workloads(built, device, dtype):
        model = model.to(device=device, dtype=dtype).eval()
        kwargs = inputs(args.batch)
        with torch.inference_mode():
            run(model, kwargs, call)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(args.repeats):
                run(model, kwargs, call)
            if device.type == "cuda":
                torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / args.repeats
        total += seconds
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        print(f"{label:<40} {seconds:>8.3f} {args.batch / seconds:>10.2f} {peak:>9.2f}")
        model.to("cpu")
    print(f"{'all four, per sample':<40} {total / args.batch:>8.3f} s  "
          f"({args.batch / total:.2f} samples/s)")


if __name__ == "__main__":
    main()
