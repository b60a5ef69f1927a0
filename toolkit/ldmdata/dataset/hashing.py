"""Content hashing: a digest per row and one over the rows, independent of sharding."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def _canonical(value):
    if isinstance(value, dict) and set(value) == {"bytes", "path"}:  # a datasets Image cell
        return {"png_sha256": hashlib.sha256(value["bytes"] or b"").hexdigest()}
    if isinstance(value, bytes):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def row_digest(row: dict, unhashed: tuple[str, ...] | list[str] = ()) -> str:
    """sha256 of one row as stored (images by the sha256 of their PNG bytes).

    ``unhashed`` columns (measurements such as wall-clock seconds) are left out, so they never
    change a ``content_hash``.
    """
    kept = {k: v for k, v in row.items() if k not in unhashed}
    text = json.dumps(_canonical(kept), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def content_hash(row_digests: list[str]) -> str:
    """sha256 over the row digests in dataset order."""
    return hashlib.sha256("\n".join(row_digests).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
