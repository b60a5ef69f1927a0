"""Build settings: the defaults of every params.yaml ``build_<task>`` key, and their checks."""

from __future__ import annotations

from ldmdata.degrade import RealEsrganParams
from ldmdata.engine import ENGINE_DEFAULTS
from ldmdata.errors import LdmdataError
from ldmdata.params import merge_known

TASKS = ("inpaint", "img2img", "sr")

COMMON = {
    "n": 100,  # rows in the finished dataset (rejects do not count)
    "seed": 0,
    "size": 512,  # output side in pixels (sr: the HR side)
    "shard_size": 1000,
    "batch_size": 16,  # model batch
    "workers": 2,  # threads for decoding and PNG encoding
    # torch threads for the models: 1 leaves the second core of a 2-core machine to the
    # decode/encode pipeline (part of the build's identity: thread count can change the
    # order of float reductions, hence the last bits of CLIP scores)
    "threads": 1,
    "device": "cpu",
    "min_side": 64,  # inputs with a shorter side are rejected
    "max_pixels": 64_000_000,  # decompression-bomb guard
    "caption_from": "auto",  # auto (source captions when present, else model) | source | model
    "num_captions": 3,  # source captions kept (ranked by CLIP score, as in the study)
    "prompt_writer": "template",  # template | llm
    "num_candidates": 15,  # candidate edit prompts per image (k)
    "num_prompts": 5,  # kept by CLIP score (m)
    "max_rejects": 10000,  # stop (resumably) when this many inputs were rejected
    # where the model batches run (ldmdata.engine); ``workers`` above are decoding threads,
    # so the Ray actor count is ``ray_workers``
    "engine": ENGINE_DEFAULTS["engine"],
    "ray_address": ENGINE_DEFAULTS["ray_address"],
    "ray_workers": ENGINE_DEFAULTS["workers"],
    "gpus_per_worker": ENGINE_DEFAULTS["gpus_per_worker"],
}

TASK_DEFAULTS = {
    "inpaint": {
        **COMMON,
        "entity_from": "auto",  # auto (source labels when present, else caption) | source | caption
        "detector_threshold": 0.1,
        "segmenter_backend": "transformers",  # transformers | segment-anything
        "mask_min": 0.05,  # fraction of the output image the mask must cover at least
        "mask_max": 0.80,  # ... and at most
        "crop_scale": 1.5,  # square crop side = crop_scale x the box's longer side
    },
    "img2img": dict(COMMON),
    # degradation: bicubic | realesrgan; realesrgan: overrides of the sampling ranges
    # (ldmdata.degrade.RealEsrganParams field names, e.g. {jpeg_range: [60, 95]})
    "sr": {**COMMON, "scale": 4, "degradation": "bicubic", "realesrgan": {}},
}

CHOICES = {
    "caption_from": ("auto", "source", "model"),
    "entity_from": ("auto", "source", "caption"),
    "prompt_writer": ("template", "llm"),
    "segmenter_backend": ("transformers", "segment-anything"),
    "degradation": ("bicubic", "realesrgan"),
}


def build_settings(task: str, given: dict) -> dict:
    """The full, checked settings of one build: defaults, then ``given`` (params + options)."""
    if task not in TASKS:
        raise LdmdataError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    settings = merge_known(TASK_DEFAULTS[task], given, f"build_{task}")
    for key, allowed in CHOICES.items():
        if key in settings and settings[key] not in allowed:
            raise LdmdataError(f"{key} must be one of {', '.join(allowed)}; got {settings[key]!r}")
    for key in ("n", "size", "shard_size", "batch_size", "workers", "num_candidates",
                "num_prompts", "num_captions", "min_side", "max_pixels", "max_rejects", "threads"):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise LdmdataError(f"{key} must be a positive integer; got {value!r}")
    if settings["num_prompts"] > settings["num_candidates"]:
        raise LdmdataError("num_prompts must not exceed num_candidates")
    if task == "inpaint":
        if not 0 <= settings["mask_min"] < settings["mask_max"] <= 1:
            raise LdmdataError("need 0 <= mask_min < mask_max <= 1")
        if settings["crop_scale"] < 1:
            raise LdmdataError("crop_scale must be at least 1")
    if task == "sr":
        if not isinstance(settings["realesrgan"], dict):
            raise LdmdataError("realesrgan must be a mapping of sampling ranges")
        RealEsrganParams.from_dict(settings["realesrgan"])  # unknown or bad ranges fail here
        scale = settings["scale"]
        if not isinstance(scale, int) or scale < 2 or settings["size"] % scale:
            raise LdmdataError(f"scale must be an integer >= 2 dividing size {settings['size']}")
    return settings
