"""Which weights a role loads: a Hub id + pinned revision (``real``) or the local ``tiny`` set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ldmdata.errors import LdmdataError

PROFILES = ("tiny", "real")

# Roles a build or attack can ask for. The real defaults live in params.yaml (``models``).
ROLES = (
    "captioner",
    "detector",
    "segmenter",
    "segmenter_official",
    "clip",
    "llm",
    "sd_img2img",
    "sd_inpaint",
    "sd_upscale",
    "sd_ip2p",
)


# The real models of the ``real`` profile (params.yaml's ``models`` section overrides them).
# Set ``revision`` to a commit sha to pin it; "main" follows the Hub (the manifests then record
# the commit it resolved to). Pinned here: only commits we found documented in public code
# (CLIP: the revision a public Intel sample pins); the others are not pinned (docs/study.md).
REAL_MODELS = {
    "captioner": {"id": "Salesforce/blip-image-captioning-large", "revision": "main"},
    "detector": {"id": "google/owlv2-base-patch16-ensemble", "revision": "main"},
    "segmenter": {"id": "facebook/sam-vit-huge", "revision": "main"},
    "segmenter_official": {"id": "sam_vit_h_4b8939.pth", "revision": None},
    "clip": {"id": "openai/clip-vit-base-patch16",
             "revision": "57c216476eefef5ab752ec549e440a49ae4ae5f3"},
    "llm": {"id": "Qwen/Qwen2.5-1.5B-Instruct", "revision": "main"},
    "sd_img2img": {"id": "stable-diffusion-v1-5/stable-diffusion-v1-5", "revision": "main"},
    "sd_inpaint": {"id": "stable-diffusion-v1-5/stable-diffusion-inpainting", "revision": "main"},
    "sd_upscale": {"id": "stabilityai/stable-diffusion-x4-upscaler", "revision": "main"},
    "sd_ip2p": {"id": "timbrooks/instruct-pix2pix", "revision": "main"},
}


@dataclass(frozen=True)
class ModelRef:
    """A loadable model: ``id`` is a Hub id or a local folder; ``revision`` a pinned commit."""

    role: str
    id: str
    revision: str | None = None

    def as_dict(self) -> dict:
        return {"role": self.role, "id": self.id, "revision": self.revision}


def default_tiny_dir() -> Path:
    """Where the tiny model set lives when no folder is given (built on first use)."""
    env = os.environ.get("LDMDATA_TINY_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ldmdata" / "tiny"


def resolve(role: str, profile: str, models_params: dict, tiny_dir: Path | None = None) -> ModelRef:
    """The :class:`ModelRef` for ``role`` under ``profile``.

    ``models_params`` is params.yaml's ``models`` section: ``{role: {id, revision}}``; roles it
    leaves out take :data:`REAL_MODELS`.
    The tiny profile points at ``tiny_dir/<role>`` (see :mod:`ldmdata.models.tiny`).
    """
    if profile not in PROFILES:
        raise LdmdataError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    if role not in ROLES:
        raise LdmdataError(f"unknown model role {role!r}; known roles: {', '.join(ROLES)}")
    if profile == "tiny":
        return ModelRef(role, str((tiny_dir or default_tiny_dir()) / role), None)
    entry = models_params.get(role) or REAL_MODELS[role]
    if not entry or not entry.get("id"):
        raise LdmdataError(f"params: models.{role}.id is not set")
    return ModelRef(role, str(entry["id"]), entry.get("revision"))
