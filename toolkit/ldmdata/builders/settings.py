"""Build settings: the defaults of every params.yaml ``build_<task>`` key, and their checks."""

from __future__ import annotations

from ldmdata.builders.degrade import RealEsrganParams
from ldmdata.engine import ENGINE_DEFAULTS
from ldmdata.errors import LdmdataError
from ldmdata.params import merge_known

TASKS = ("inpaint", "img2img", "sr")

COMMON = {
    # rows in the finished dataset (rejects do not count); null: all of a curated source
    # (ldm-robustness:), DEFAULT_N otherwise
    "n": None,
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
    # Where images come from and how they are sized. A curated benchmark source (the study's
    # folder, ldm-robustness:PATH) brings its own prompts, masks and resizing: the ``auto``
    # choices below take them from such a source only, from our models otherwise.
    "selection": "order",  # order (the source's) | study (top-K by mean CLIP of 3 best captions)
    "selection_k": None,  # K of selection: study (null: n)
    "resize": "auto",  # auto (squash for curated sources, else center_crop) | center_crop | squash
    "prompts_from": "auto",  # auto (curated source's own, else model) | source | model
    # auto (source captions when present, else model; no captioner when nothing needs captions,
    # i.e. prompts and masks both come from the source) | source | model
    "caption_from": "auto",
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

DEFAULT_N = 100

TASK_DEFAULTS = {
    "inpaint": {
        **COMMON,
        # auto (a curated source's own masks, else model) | source (the source's masks: the study
        # folder's, COCO's instances by the study's rule, synthetic's exact ones) | model (SAM)
        "mask_from": "auto",
        # for model masks: auto (source labels when present, else caption) | source | caption
        "entity_from": "auto",
        "detector_threshold": 0.1,
        "segmenter_backend": "transformers",  # transformers | segment-anything
        "mask_min": 0.05,  # fraction of the output image a model mask must cover at least
        "mask_max": 0.80,  # ... and at most (source masks are taken as given)
        # crop side = crop_scale x the box's longer side; center_crop: a square moved inside
        # the image; squash: clipped at the image border (the study), then squashed to size
        "crop_scale": 1.5,
    },
    "img2img": dict(COMMON),
    # degradation: bicubic | realesrgan; realesrgan: overrides of the sampling ranges
    # (ldmdata.builders.degrade.RealEsrganParams field names, e.g. {jpeg_range: [60, 95]})
    "sr": {**COMMON, "scale": 4, "degradation": "bicubic", "realesrgan": {}},
}

CHOICES = {
    "selection": ("order", "study"),
    "resize": ("auto", "center_crop", "squash"),
    "prompts_from": ("auto", "source", "model"),
    "mask_from": ("auto", "source", "model"),
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
        if key == "n" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise LdmdataError(f"{key} must be a positive integer; got {value!r}")
    k = settings["selection_k"]
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k <= 0):
        raise LdmdataError(f"selection_k must be null or a positive integer; got {k!r}")
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


# What ``auto`` means for a curated benchmark source, and for any other source.
AUTO = {
    "prompts_from": ("source", "model"),
    "mask_from": ("source", "model"),
    "resize": ("squash", "center_crop"),
}


def resolve_auto(settings: dict, curated: bool, size: int | None) -> dict:
    """``settings`` with every ``auto`` of :data:`AUTO`, and a null ``n``, made concrete for a
    source (curated or not, of ``size`` items); the manifest records the resolved choices."""
    out = dict(settings)
    if out["n"] is None:
        out["n"] = size if curated and size else DEFAULT_N
    for key, (for_curated, otherwise) in AUTO.items():
        if out.get(key) == "auto":
            out[key] = for_curated if curated else otherwise
    return out


def captions_needed(task: str, settings: dict) -> bool:
    """Whether captions feed anything in a build with resolved ``settings``: the prompt
    writer, or the entity a model mask is made for."""
    return settings["prompts_from"] == "model" or (
        task == "inpaint" and settings["mask_from"] == "model"
    )
