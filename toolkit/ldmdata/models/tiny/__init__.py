"""The ``tiny`` model set: small random-init models with the real architectures.

Each role is built from a config with a fixed seed and written with ``save_pretrained`` into
``<dir>/<role>/``, so the same loading code reads it as reads a Hub id. Their outputs are noise:
the set exists to run every code path offline (tests, CI, the default ``dvc repro``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from filelock import FileLock

from ldmdata import __version__
from ldmdata.models.loading import quiet_loading

TINY_FORMAT = 1

# role -> "module:function" under ldmdata.models.tiny; each function(out_dir: Path) writes one role.
BUILDERS = {
    "captioner": "vision:build_captioner",
    "detector": "vision:build_detector",
    "segmenter": "vision:build_segmenter",
    "segmenter_official": "vision:build_segmenter_official",
    "clip": "vision:build_clip",
    "llm": "vision:build_llm",
    "sd_img2img": "diffusion:build_sd_img2img",
    "sd_inpaint": "diffusion:build_sd_inpaint",
    "sd_upscale": "diffusion:build_sd_upscale",
    "sd_ip2p": "diffusion:build_sd_ip2p",
}


def _builder(role: str):
    module, func = BUILDERS[role].split(":")
    return getattr(importlib.import_module(f"ldmdata.models.tiny.{module}"), func)


def _tree_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _is_complete(out_dir: Path, roles: Iterable[str]) -> bool:
    index = out_dir / "tiny.json"
    if not index.exists():
        return False
    built = json.loads(index.read_text()).get("roles", {})
    return all(role in built and (out_dir / role).is_dir() for role in roles)


def build_tiny_models(out_dir: Path, roles: Iterable[str] | None = None, seed: int = 0) -> Path:
    """Write the tiny model set (all roles by default) into ``out_dir``; returns ``out_dir``.

    Every role is built in a temporary folder and renamed into place, and ``tiny.json`` lists
    each role with the sha256 of its files, so a crash never leaves a half-written role.
    Building twice gives byte-identical weights.
    """
    out_dir = Path(out_dir)
    roles = list(roles or BUILDERS)
    out_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir / ".tiny.lock")):
        index_path = out_dir / "tiny.json"
        index = json.loads(index_path.read_text()) if index_path.exists() else {}
        built = index.get("roles", {})
        for role in roles:
            if role in built and (out_dir / role).is_dir():
                continue
            with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{role}-") as tmp:
                torch.manual_seed(seed)
                with quiet_loading():  # no "Writing model shards" bars
                    _builder(role)(Path(tmp) / role)
                shutil.rmtree(out_dir / role, ignore_errors=True)
                (Path(tmp) / role).rename(out_dir / role)
            built[role] = _tree_sha256(out_dir / role)
            index = {"format": TINY_FORMAT, "seed": seed, "ldmdata": __version__, "roles": built}
            tmp_index = index_path.with_suffix(".json.tmp")
            tmp_index.write_text(json.dumps(index, indent=2, sort_keys=True))
            tmp_index.replace(index_path)
    return out_dir


def ensure_tiny_models(out_dir: Path, roles: Iterable[str]) -> Path:
    """Build the given roles into ``out_dir`` unless they are there already."""
    roles = list(roles)
    if not _is_complete(Path(out_dir), roles):
        build_tiny_models(out_dir, roles)
    return Path(out_dir)


def tiny_fingerprint(out_dir: Path, role: str) -> str:
    """The sha256 recorded for ``role`` in ``tiny.json`` (the tiny set's 'revision')."""
    return json.loads((Path(out_dir) / "tiny.json").read_text())["roles"][role]
