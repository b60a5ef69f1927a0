"""The ``real`` profile, offline, through a Hugging Face Hub cache laid out by hand.

The cache holds the tiny models under the real Hub ids of params.yaml (``models--ORG--NAME/
snapshots/<commit>/`` + ``refs/main``), so build, attack, edit and evaluate go through exactly
the loading code a user's real run goes through: ids, revisions, ``from_pretrained`` from the
cache. CLIP is pinned to a commit (as params.yaml pins it), the editor follows ``main``; a revision
missing from the cache is one clear line.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ROLES = ("clip", "captioner", "sd_img2img")
pytestmark = pytest.mark.slow


def commit_of(role: str) -> str:
    return hashlib.sha1(f"ldmdata-test-{role}".encode()).hexdigest()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_dir):
    """``(cache dir, params.yaml)``: tiny weights under the real ids; sd_img2img pinned."""
    root = tmp_path_factory.mktemp("real")
    cache = root / "hub"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    models = params["models"]
    for role in ROLES:
        repo = cache / f"models--{models[role]['id'].replace('/', '--')}"
        pinned = re.fullmatch(r"[0-9a-f]{40}", str(models[role]["revision"]))
        commit = models[role]["revision"] if pinned else commit_of(role)
        shutil.copytree(tiny_dir / role, repo / "snapshots" / commit)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
    models["profile"] = "real"  # CLIP is pinned to a commit in params.yaml; the editor: main
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return cache, root / "params.yaml"


def ldmdata(hub, *args, ok=True):
    cache, _ = hub
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["ldmdata", *map(str, args)], env=env, capture_output=True,
                            text=True)
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result


def test_build_attack_edit_evaluate_with_the_real_profile(hub, tmp_path):
    _, params = hub
    real = ["--profile", "real", "--params", params]
    ldmdata(hub, "build", "img2img", "--n", 2, "--out", tmp_path / "ds", "--batch-size", 2,
            *real)
    built = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    captioner = next(m for m in built["models"] if m["role"] == "captioner")
    clip = next(m for m in built["models"] if m["role"] == "clip")
    assert clip["id"] == "openai/clip-vit-base-patch16" and len(clip["revision"]) == 40
    assert "resolved_revision" not in captioner  # source captions: the captioner never loaded
    assert clip.get("resolved_revision", clip["revision"]) == clip["revision"]

    ldmdata(hub, "attack", tmp_path / "ds", "--out", tmp_path / "adv", "--target",
            "vae.encoder", "--iterations", 2, "--limit", 1, "--prompts", "0", "--device", "cpu",
            *real)
    attack = json.loads((tmp_path / "adv" / "manifest.json").read_text())
    assert attack["model"] == {"role": "sd_img2img", "id": "stable-diffusion-v1-5/"
                               "stable-diffusion-v1-5", "revision": "main",
                               "resolved_revision": commit_of("sd_img2img")}  # refs/main

    for name, images in (("clean", []), ("adv_edits", ["--images", tmp_path / "adv"])):
        ldmdata(hub, "edit", tmp_path / "ds", "--out", tmp_path / name, *images,
                "--inference-steps", 2, "--limit", 1, "--prompts", "0", "--device", "cpu", *real)
    ldmdata(hub, "evaluate", tmp_path / "adv_edits", "--reference", tmp_path / "clean",
            "--dataset", tmp_path / "ds", "--out", tmp_path / "m.json", "--metrics",
            "psnr,ssim,clip_score", "--bootstrap", 10, *real)
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["provenance"]["models"]["clip"]["id"] == "openai/clip-vit-base-patch16"
    assert summary["provenance"]["models"]["editor"]["resolved_revision"] == \
        commit_of("sd_img2img")


def test_a_revision_missing_from_the_cache_is_one_line(hub, tmp_path):
    _, params = hub
    pinned = yaml.safe_load(params.read_text())
    pinned["models"]["sd_img2img"]["revision"] = "0" * 40
    other = tmp_path / "params.yaml"
    other.write_text(yaml.safe_dump(pinned, sort_keys=False))
    ldmdata(hub, "build", "img2img", "--n", 1, "--out", tmp_path / "ds", "--profile", "real",
            "--params", hub[1])
    result = ldmdata(hub, "attack", tmp_path / "ds", "--out", tmp_path / "adv", "--target",
                     "vae.encoder", "--profile", "real", "--params", other, ok=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot load sd_img2img model")
    assert "0" * 40 in lines[0] and not (tmp_path / "adv").exists()
