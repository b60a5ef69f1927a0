"""Stable Diffusion editing pipelines (img2img, inpainting, x4 upscaling, InstructPix2Pix).

Loaded from a :class:`ModelRef` (a Hub id at a pinned revision, or a local folder such as the
tiny set's) with safetensors only and no safety checker, through the same code for both.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionUpscalePipeline,
)

from ldmdata.errors import LdmdataError
from ldmdata.models.loading import is_local, load_pretrained, quiet_loading, resolved_commit
from ldmdata.models.refs import ModelRef, resolve
from ldmdata.models.tiny import ensure_tiny_models

if TYPE_CHECKING:
    from ldmdata.engine import Engine

PIPELINES = {
    "img2img": StableDiffusionImg2ImgPipeline,
    "inpaint": StableDiffusionInpaintPipeline,
    "upscale": StableDiffusionUpscalePipeline,
    "ip2p": StableDiffusionInstructPix2PixPipeline,
}
# The model role (params.yaml ``models`` section, tiny set folder) of each editing kind.
ROLES = {"img2img": "sd_img2img", "inpaint": "sd_inpaint", "upscale": "sd_upscale",
         "ip2p": "sd_ip2p"}
__all__ = ["PIPELINES", "ROLES", "describe_model", "editor_ref", "load_pipeline", "pick_device",
           "pick_dtype", "quiet_loading"]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU; a missing GPU is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise LdmdataError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise LdmdataError(f"device {device} asked for, but torch sees no CUDA GPU")
    return chosen


def run_device(engine: Engine, device: str) -> torch.device:
    """Where a job's batches run (:mod:`ldmdata.engine`); a Ray worker's GPU need not be here."""
    chosen = engine.worker_device(device)
    if engine.name == "ray" and chosen.startswith("cuda"):
        return torch.device(chosen)
    return pick_device(chosen)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype not in DTYPES:
        raise LdmdataError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    if dtype == "float16" and device.type == "cpu":
        raise LdmdataError("float16 needs a GPU; use float32 (or bfloat16) on the CPU")
    return DTYPES[dtype]


def _no_safety_checker(pipeline_class) -> dict:
    """The kwargs that turn the safety checker off, for the pipelines whose constructor takes
    them (the x4 upscaler takes ``safety_checker`` but not ``requires_safety_checker``; passing
    it anyway makes diffusers warn on every load)."""
    taken = inspect.signature(pipeline_class.__init__).parameters
    wanted = {"safety_checker": None, "requires_safety_checker": False}
    return {key: value for key, value in wanted.items() if key in taken}


def load_pipeline(
    ref: ModelRef, kind: str, device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """The diffusers pipeline of ``kind`` for ``ref``, in eval mode, on ``device``."""
    if kind not in PIPELINES:
        raise LdmdataError(f"unknown editor kind {kind!r}; choose one of: {', '.join(PIPELINES)}")
    pipe = load_pretrained(PIPELINES[kind], ref, config_name="model_index.json", dtype=dtype,
                           **_no_safety_checker(PIPELINES[kind]))
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    for name in ("unet", "vae", "text_encoder"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.eval().requires_grad_(False)
    return pipe


def describe_model(ref: ModelRef) -> dict:
    """``{role, id, revision}`` for manifests; a tiny-set folder's revision is its sha256, and
    a Hub id's record adds the commit its revision resolves to in the cache."""
    record = ref.as_dict()
    commit = resolved_commit(ref, "model_index.json")
    if commit and commit != ref.revision:
        record["resolved_revision"] = commit
    if is_local(ref.id) and ref.revision is None:
        index = Path(ref.id).expanduser().parent / "tiny.json"
        if index.is_file():
            built = json.loads(index.read_text()).get("roles", {})
            if Path(ref.id).name in built:
                record["revision"] = f"tiny-sha256:{built[Path(ref.id).name]}"
    return record


def editor_ref(
    kind: str, profile: str, models_params: dict, tiny_dir: Path | None = None,
    model: str | None = None, revision: str | None = None,
) -> ModelRef:
    """The editor for ``kind``: ``model`` (+ ``revision``) if given, else the profile's.

    The tiny profile builds the role into ``tiny_dir`` on first use.
    """
    if kind not in ROLES:
        raise LdmdataError(f"unknown editor kind {kind!r}; choose one of: {', '.join(ROLES)}")
    role = ROLES[kind]
    if model:
        return ModelRef(role, model, revision)
    ref = resolve(role, profile, models_params, tiny_dir)
    if profile == "tiny":
        ensure_tiny_models(Path(ref.id).parent, [role])
    return ref
