"""Test data for edit/defend/evaluate/report/trace: small adversarial sets and edited sets.

The adversarial sets are written directly in the attack stage's format (seeded noise, not a
real attack), so these tests never depend on running the attack code.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from helpers.attack_data import PROMPTS, make_dataset, scene
from ldmdata.attacks.runner import FEATURES as ATTACK_FEATURES
from ldmdata.dataset import ShardedWriter, iter_rows, read_manifest
from ldmdata.dataset.inputs import IMAGE_COLUMN
from ldmdata.dataset.png import encode_png
from ldmdata.models.editors import describe_model
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import dvc_hash


def make_attack_set(dataset: Path, out: Path, tiny_dir: Path, eps: float = 0.1,
                    prompts: list[int] | None = None, target: str = "vae.encoder") -> Path:
    """'Attack' every (image, prompt) of ``dataset`` with seeded uniform noise of size ``eps``."""
    manifest = read_manifest(dataset)
    column = IMAGE_COLUMN[manifest["kind"]]  # sr: the low-res image is attacked
    rows = [{**row, "image": row[column]} for row in
            iter_rows(dataset, columns=["id", "source_id", column, "prompts"])]
    role = {"inpaint": "sd_inpaint", "sr": "sd_upscale"}.get(manifest["kind"], "sd_img2img")
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
                    "loss_trace": [0.0], "iterations": 1, "seconds": 0.0,
                    "peak_memory_mb": None,
                }, cursor=n)
        writer.finish(n, {
            "task": manifest["kind"],
            "attack": {"method": "bim", "target": target, "params": {"eps": eps}},
            "input": {"path": str(dataset), "dvc_hash": dvc_hash(dataset),
                      "content_hash": manifest["content_hash"], "n": manifest["n"]},
            "model": model,
        })
    return out


@contextmanager
def one_thread():
    """Tiny models on a busy 2-core machine: one torch thread avoids OpenMP spin contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


FAST = {"num_inference_steps": 3}


def make_world(root: Path, tiny_dir: Path, task: str = "img2img", n: int = 3) -> dict:
    """A dataset, an adversarial set, and the clean and adversarial edits (3 steps, CPU)."""
    from ldmdata.edit import EditOptions, edit

    world = {"dataset": make_dataset(root / "dataset", task, n=n, size=64, n_prompts=2)}
    world["adversarial"] = make_attack_set(world["dataset"], root / "adversarial", tiny_dir)
    options = EditOptions(batch_size=4, device="cpu")
    edit(world["dataset"], root / "clean_edits", overrides=FAST, tiny_dir=tiny_dir,
         options=options)
    edit(world["dataset"], root / "adv_edits", images_dir=world["adversarial"], overrides=FAST,
         tiny_dir=tiny_dir, options=options)
    world.update(clean_edits=root / "clean_edits", adv_edits=root / "adv_edits")
    return world


def make_sr_dataset(folder: Path, n: int = 2, size: int = 64) -> Path:
    """An sr dataset in the builder's schema: ``hr`` (size) and ``lr`` (size / 4), prompts."""
    from ldmdata.builders.sr import FEATURES as SR_FEATURES

    with ShardedWriter(folder, kind="sr", features=SR_FEATURES, config={"test": "sr"}) as writer:
        for i in range(n):
            hr, _, _ = scene(i, size)
            writer.add({
                "id": f"s{i}", "source_id": f"synthetic:{i}", "hr": encode_png(hr),
                "lr": encode_png(hr.resize((size // 4, size // 4), Image.Resampling.BICUBIC)),
                "scale": 4, "degradation": '{"kind": "bicubic"}', "caption": "a scene",
                "captions": ["a scene"], "prompts": PROMPTS[:2], "prompt_clip_scores": [0.3, 0.3],
            }, cursor=i + 1)
        writer.finish(n, {"task": "sr"})
    return folder
