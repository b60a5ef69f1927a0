"""Small adversarial sets in the attack stage's format, written directly for edit/eval tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ldmdata.attacks.runner import FEATURES as ATTACK_FEATURES
from ldmdata.dataset import ShardedWriter, iter_rows, read_manifest
from ldmdata.images import encode_png
from ldmdata.models.editors import describe_model
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import dvc_hash


def make_attack_set(dataset: Path, out: Path, tiny_dir: Path, eps: float = 0.1,
                    prompts: list[int] | None = None, target: str = "vae.encoder") -> Path:
    """'Attack' every (image, prompt) of ``dataset`` with seeded uniform noise of size ``eps``."""
    rows = list(iter_rows(dataset, columns=["id", "source_id", "image", "prompts"]))


    manifest = read_manifest(dataset)
    role = "sd_inpaint" if manifest["kind"] == "inpaint" else "sd_img2img"
    model = describe_model(ModelRef(role, str(tiny_dir / role)))
    n = 0
    with ShardedWriter(out, kind="attack", features=ATTACK_FEATURES,
                       config={"test": "attack", "eps": eps, "target": target}) as writer:
        for index, row in enumerate(rows):
            for k, prompt in enumerate(row["prompts"]):
                if prompts is not None and k not in prompts:
                    continue
                rng = np.random.default_rng([index, k])
                x = np.asarray(row["image"], dtype=np.float64) / 255
                adv = np.clip(x + rng.uniform(-eps, eps, x.shape), 0, 1)
                image = Image.fromarray(np.rint(adv * 255).astype(np.uint8))
                delta = (np.asarray(image, dtype=np.float64) / 255 - x).ravel()
                n += 1
                writer.add({
                    "id": f"{row['id']}-p{k}", "sample_id": row["id"],
                    "source_id": row["source_id"], "prompt_index": k, "prompt": prompt,
                    "image": encode_png(image), "linf": float(np.abs(delta).max()),
                    "l2": float(np.linalg.norm(delta)), "loss": 0.0, "loss_first": 0.0,
                    "loss_trace": [0.0], "iterations": 1,
                }, cursor=n)
        writer.finish(n, {
            "task": manifest["kind"],
            "attack": {"method": "bim", "target": target, "params": {"eps": eps}},
            "input": {"path": str(dataset), "dvc_hash": dvc_hash(dataset),
                      "content_hash": manifest["content_hash"], "n": manifest["n"]},
            "model": model,
        })
    return out
