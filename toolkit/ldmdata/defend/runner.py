"""Defend a whole image set (a clean dataset or an adversarial set) into a new versioned one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import PIL
import torch
from PIL import Image

from ldmdata.dataset import ShardedWriter
from ldmdata.dataset.inputs import DEFENDED, InputSet, open_input
from ldmdata.dataset.jobs import JobOptions, batches
from ldmdata.dataset.png import encode_png
from ldmdata.engine import connect, run_batches
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import (
    describe_model,
    editor_ref,
    load_pipeline,
    pick_dtype,
    run_device,
)
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import code_version, source_fingerprint
from ldmdata.purify import Defence, Defender, parse_defence

# The code that decides a defence's pixels: a set made by other code is redone, not resumed.
CODE = ("ldmdata.defend", "ldmdata.purify", "ldmdata.models.editors")

FEATURES = datasets.Features({
    "id": datasets.Value("string"),  # the input row's id
    "sample_id": datasets.Value("string"),
    "source_id": datasets.Value("string"),
    "prompt_index": datasets.Value("int32"),  # the attacked prompt; null for clean inputs
    "image": datasets.Image(),
    "linf": datasets.Value("float64"),  # change made by the defence, [0, 1] pixel units
    "l2": datasets.Value("float64"),
})


@dataclass
class DefendOptions(JobOptions):
    """How to defend a set (:class:`JobOptions`; ``limit`` counts samples)."""

    batch_size: int = 8


def _change(before: Image.Image, after: Image.Image) -> tuple[float, float]:
    delta = (np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)) / 255
    return float(np.abs(delta).max()), float(np.sqrt((delta**2).sum()))


def defend_dataset(
    input_dir: Path,
    out_dir: Path,
    defence: Defence,
    model: ModelRef | None = None,
    options: DefendOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Apply ``defence`` to every image of ``input_dir``; returns the output manifest.

    ``model`` is the pipeline of ``defence.model_kind`` (the x4 upscaler, SD img2img).
    """
    options = options or DefendOptions()
    options.check()
    images = open_input(Path(input_dir), "input", near=Path(out_dir))
    if images.kind == "defended":
        raise LdmdataError(f"{input_dir} is already defended; defend the set it came from")
    kind = defence.model_kind
    if kind is not None and model is None:
        raise LdmdataError(f"the {defence.method} defence needs a {kind} model")
    images.check_sizes(defence)
    device = run_device(options.engine, options.device)
    dtype = pick_dtype(options.dtype, device)
    model_record = describe_model(model) if kind is not None else None
    config = {
        "defence": defence.as_dict(),
        "input_dvc_hash": images.record["dvc_hash"],
        "defence_model": model_record,
        "limit": options.limit,
        "batch_size": options.batch_size if kind is not None else None,
        "dtype": options.dtype if kind is not None else None,
        "threads": options.threads if kind is not None else None,
        "code": source_fingerprint(CODE),
    }
    rows = list(_rows_to_defend(images, options.limit))
    with connect(options.engine), ShardedWriter(
            Path(out_dir), kind=DEFENDED, features=FEATURES, config=config,
            shard_size=options.shard_size, overwrite=options.overwrite) as writer:
        if writer.complete_manifest is not None:
            return writer.complete_manifest
        make_worker = DefendWorkerFactory(images, defence, model, device, dtype, options.threads)
        todo = list(batches(len(rows), writer.cursor, options.batch_size, options.shard_size))
        for (pos, end), records in zip(todo, run_batches(options.engine, todo, make_worker,
                                                         defend_batch), strict=True):
            for i, record in enumerate(records):
                writer.add(record, cursor=pos + i + 1)
            if progress is not None:
                progress(end, len(rows))
        upstream = images.manifest.get("input") or {}
        extra = {
            "task": images.task,
            "defence": defence.as_dict(),
            "input": {
                **images.record,
                "origin": images.origin,
                "dataset_hash": images.dataset_hash or images.record["dvc_hash"],
                "dataset": upstream if images.kind == "adversarial" else None,
                "attack": images.manifest.get("attack") if images.kind == "adversarial" else None,
                "attack_model": (images.manifest.get("model")
                                 if images.kind == "adversarial" else None),
            },
            "defence_model": model_record,
            "runtime": {"device": str(device), **options.engine.record(),
                        "torch": torch.__version__, "pillow": PIL.__version__},
            "code": code_version(),
        }
        return writer.finish(len(rows), extra)


class RowRange:
    """Rows ``begin:end`` of an image set from a forward stream (read again to go back)."""

    def __init__(self, images: InputSet):
        self.images = images
        self._open()

    def _open(self) -> None:
        self._stream, self._next = self.images.rows(decode=True), 0

    def take(self, begin: int, end: int) -> list[dict]:
        if begin < self._next:
            self._open()
        for _ in range(begin - self._next):
            next(self._stream)
        self._next = end
        return [next(self._stream) for _ in range(end - begin)]


@dataclass
class DefendWorkerFactory:
    """Builds a worker: ``(defender, its own row reader)`` (picklable: Ray workers build theirs)."""

    images: InputSet
    defence: Defence
    model: ModelRef | None
    device: torch.device
    dtype: torch.dtype
    threads: int | None

    def __call__(self) -> tuple[Defender, RowRange]:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        kind = self.defence.model_kind
        pipe = load_pipeline(self.model, kind, self.device, self.dtype) if kind else None
        return Defender(self.defence, pipe), RowRange(self.images)


def defend_batch(worker: tuple[Defender, RowRange], span: tuple[int, int]) -> list[dict]:
    """The output rows of input rows ``begin:end``."""
    defender, reader = worker
    chunk = reader.take(*span)
    defended = defender([r["image"] for r in chunk], [r["id"] for r in chunk])
    records = []
    for row, image in zip(chunk, defended, strict=True):
        linf, l2 = _change(row["image"], image)
        records.append({
            "id": row["id"], "sample_id": row["sample_id"], "source_id": row["source_id"],
            "prompt_index": row["attack_prompt_index"], "image": encode_png(image),
            "linf": linf, "l2": l2,
        })
    return records


def _rows_to_defend(images, limit: int | None):
    """Input rows (no pixels) up to the first ``limit`` samples."""
    samples: set[str] = set()
    for row in images.rows(decode=False):
        if row["sample_id"] not in samples:
            if limit is not None and len(samples) >= limit:
                return
            samples.add(row["sample_id"])
        yield row


def defend(
    input_dir: Path,
    out_dir: Path,
    defence: str | dict | Defence,
    *,
    profile: str = "tiny",
    models_params: dict | None = None,
    tiny_dir: Path | None = None,
    model: str | None = None,
    revision: str | None = None,
    options: DefendOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """What the CLI and the DVC stage run: parse the defence, pick its model, defend."""
    chosen = defence if isinstance(defence, Defence) else parse_defence(defence)
    if chosen is None:
        raise LdmdataError("give a defence, e.g. jpeg:quality=75")
    (options or DefendOptions()).check()
    ref = None
    if chosen.model_kind is not None:
        ref = editor_ref(chosen.model_kind, profile, models_params or {}, tiny_dir, model,
                         revision)
    return defend_dataset(input_dir, out_dir, chosen, ref, options, progress)
