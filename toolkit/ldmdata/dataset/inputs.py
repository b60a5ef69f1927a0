"""The image sets a stage reads: a clean dataset, an adversarial set, a defended set.

All three become the same rows (``id, sample_id, source_id, attack_prompt_index, image``), and
each knows the DVC hash of the clean dataset it came from, so an edit can check that the
dataset it takes prompts and masks from is the one the images were made from.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ldmdata.dataset.reader import iter_rows, read_input_manifest, read_manifest
from ldmdata.errors import LdmdataError
from ldmdata.provenance import dvc_hash, portable_path

# The dataset column holding each task's input image (what attacks perturb and editors edit).
IMAGE_COLUMN = {"img2img": "image", "inpaint": "image", "sr": "lr"}
TASKS = tuple(IMAGE_COLUMN)
ATTACK, DEFENDED = "attack", "defended"
# The edit stage's list of edited sets, which the evaluate stage reads.
EDIT_PLAN = "plan.json"


def folder_record(folder: Path, role: str, near: Path | None = None) -> dict:
    """What a consumer records of a sharded set it read: path, kind, DVC hash, content hash."""
    manifest = read_manifest(folder)
    return {
        "role": role,
        "path": portable_path(folder, near),
        "kind": manifest.get("kind"),
        "dvc_hash": dvc_hash(folder),
        "content_hash": manifest.get("content_hash"),
        "n": manifest.get("n"),
    }


@dataclass
class InputSet:
    """One readable image set.

    ``origin`` is what its pixels started as (``clean`` or ``adversarial``); ``kind`` is
    ``clean``, ``adversarial`` or ``defended``. ``dataset_hash`` is the DVC hash of the clean
    dataset it was made from (None for a clean dataset: it is its own).
    """

    path: Path
    manifest: dict
    kind: str
    origin: str
    task: str
    record: dict
    dataset_hash: str | None
    defence: dict | None = None

    @property
    def image_column(self) -> str:
        return IMAGE_COLUMN[self.task] if self.kind == "clean" else "image"

    def rows(self, decode: bool = True) -> Iterator[dict]:
        """``id, sample_id, source_id, attack_prompt_index`` (+ ``image`` when ``decode``)."""
        columns = ["id", "source_id"] + ([self.image_column] if decode else [])
        if self.kind != "clean":
            columns += ["sample_id", "prompt_index"]
        for row in iter_rows(self.path, columns=columns, decode_images=decode):
            out = {
                "id": row["id"],
                "sample_id": row.get("sample_id", row["id"]),
                "source_id": row["source_id"],
                "attack_prompt_index": row.get("prompt_index"),
            }
            if decode:
                out["image"] = row[self.image_column].convert("RGB")
            yield out


    def check_sizes(self, defence) -> None:
        """LdmdataError unless every image can take ``defence`` (read from the PNG headers)."""
        if defence is None or defence.min_side is None:
            return
        for row in iter_rows(self.path, columns=[self.image_column], decode_images=False):
            defence.check_size(*Image.open(io.BytesIO(row[self.image_column]["bytes"])).size)


def open_input(folder: Path, role: str = "images", near: Path | None = None) -> InputSet:
    """Read ``folder``'s manifest and classify it; LdmdataError for anything else.

    ``near``: where its record will be written (see :func:`ldmdata.trace.portable_path`).
    """
    folder = Path(folder)
    manifest = read_input_manifest(folder)
    kind = manifest.get("kind")
    record = folder_record(folder, role, near)
    if kind in TASKS:
        return InputSet(folder, manifest, "clean", "clean", kind, record, None)
    if kind == ATTACK:
        task = manifest.get("task")
        upstream = (manifest.get("input") or {}).get("dvc_hash")
        return InputSet(folder, manifest, "adversarial", "adversarial", task, record, upstream)
    if kind == DEFENDED:
        given = manifest["input"]
        return InputSet(folder, manifest, "defended", given["origin"], manifest["task"], record,
                        given.get("dataset_hash"), defence=manifest.get("defence"))
    raise LdmdataError(
        f"{folder} is a {kind!r} set; expected a dataset (img2img, inpaint, sr), an adversarial "
        "set (attack) or a defended set"
    )


def check_same_dataset(images: InputSet, dataset: InputSet) -> None:
    """The images were made from ``dataset`` (its DVC hash is the one they record)."""
    if dataset.kind != "clean":
        raise LdmdataError(f"{dataset.path} must be a clean dataset, it is {dataset.kind}")
    if images.dataset_hash is None:
        return
    if images.dataset_hash != dataset.record["dvc_hash"]:
        raise LdmdataError(
            f"{images.path} was made from a dataset with DVC hash {images.dataset_hash}, but "
            f"{dataset.path} hashes to {dataset.record['dvc_hash']}; give the dataset it came "
            "from (or re-run the attack)"
        )

