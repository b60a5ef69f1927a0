"""Reading and verifying a dataset folder written by :class:`ShardedWriter`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
from PIL import Image

from ldmdata.dataset.hashing import content_hash, file_sha256, row_digest
from ldmdata.errors import LdmdataError

if TYPE_CHECKING:
    import datasets


def read_manifest(folder: Path) -> dict:
    """The manifest of a finished dataset; LdmdataError when ``folder`` is not one."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise LdmdataError(f"{folder} is not a finished ldmdata dataset (no manifest.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise LdmdataError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}") from None


MANIFEST_KEYS = ("kind", "n", "features", "shards", "content_hash")


def read_input_manifest(folder: Path) -> dict:
    """The manifest of a set a stage is about to read, checked for what reading needs.

    One line (LdmdataError) for a manifest without the keys of a finished set, a shard that is
    missing, or parquet files the manifest does not list (a foreign or half-copied folder), so
    a stage refuses such input before it loads any model. ``verify`` re-hashes everything.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    shards = manifest.get("shards")
    if missing or not isinstance(shards, list) or not all(
            isinstance(s, dict) and {"file", "n", "sha256"} <= set(s) for s in shards):
        what = f"no {', '.join(missing)}" if missing else "a malformed shard list"
        raise LdmdataError(f"{folder}/manifest.json is corrupt ({what}); rebuild the set")
    listed = {s["file"] for s in shards}
    on_disk = {f"data/{p.name}" for p in (folder / "data").glob("*.parquet")}
    if listed - on_disk:
        raise LdmdataError(f"{folder}: shard {sorted(listed - on_disk)[0]} is missing")
    if on_disk - listed:
        raise LdmdataError(f"{folder}: {sorted(on_disk - listed)[0]} is not listed in its "
                           "manifest (a foreign or half-copied folder); remove it or rebuild")
    return manifest


def shard_paths(folder: Path, manifest: dict | None = None) -> list[Path]:
    manifest = manifest or read_manifest(folder)
    return [Path(folder) / s["file"] for s in manifest["shards"]]


def iter_rows(
    folder: Path, columns: list[str] | None = None, decode_images: bool = True
) -> Iterator[dict]:
    """Rows in dataset order, one row group in memory at a time; images as RGB/L PIL images."""
    import datasets  # on use: it takes seconds to import

    manifest = read_manifest(folder)
    features = datasets.Features.from_dict(manifest["features"])
    image_columns = {k for k, v in features.items() if isinstance(v, datasets.Image)}
    for path in shard_paths(folder, manifest):
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            for row in parquet.read_row_group(group, columns=columns).to_pylist():
                if decode_images:
                    for key in image_columns & row.keys():
                        image = Image.open(io.BytesIO(row[key]["bytes"]))
                        image.load()
                        row[key] = image
                yield row


def load(folder: Path) -> datasets.Dataset:
    """The dataset as a ``datasets.Dataset`` (images decode to PIL on access)."""
    import datasets

    files = [str(p) for p in shard_paths(folder)]
    return datasets.load_dataset("parquet", data_files={"train": files}, split="train")


def verify(folder: Path) -> list[str]:
    """Re-hash ``folder`` against its manifest; the problems found, first mismatch first."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    problems: list[str] = []
    listed = {s["file"] for s in manifest["shards"]}
    on_disk = {f"data/{p.name}" for p in (folder / "data").glob("*.parquet")}
    for extra in sorted(on_disk - listed):
        problems.append(f"{extra}: shard not listed in the manifest")
    digests: list[str] = []
    unhashed = manifest.get("unhashed_columns", [])
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        if not path.is_file():
            problems.append(f"{shard['file']}: missing")
            continue
        if file_sha256(path) != shard["sha256"]:
            problems.append(f"{shard['file']}: sha256 differs from the manifest")
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as err:  # a damaged parquet file names itself, not a traceback
            problems.append(f"{shard['file']}: unreadable parquet ({type(err).__name__})")
            continue
        if len(rows) != shard["n"]:
            problems.append(f"{shard['file']}: {len(rows)} rows, manifest says {shard['n']}")
        digests.extend(row_digest(r, unhashed) for r in rows)
    if not problems:
        if len(digests) != manifest["n"]:
            problems.append(f"{len(digests)} rows in all, manifest says {manifest['n']}")
        elif content_hash(digests) != manifest["content_hash"]:
            problems.append("content_hash differs from the manifest")
    return problems
