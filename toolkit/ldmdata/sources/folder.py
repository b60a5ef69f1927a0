"""Images from a folder tree, with optional sidecar captions and labels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ldmdata.errors import LdmdataError
from ldmdata.sources.base import SourceItem

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})


class FolderSource:
    """Every image file under ``path`` (recursive), ordered by relative POSIX path.

    Sidecars beside an image share its stem: ``<stem>.txt`` holds one caption per non-empty line;
    ``<stem>.json`` holds ``{"captions": [...], "labels": [...]}`` (both keys optional). Sidecars
    are read and checked when the source is opened, image bytes only while iterating.
    """

    curated = False  # not a curated benchmark (see Source.curated)

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.spec = f"folder:{path}"
        if not self.path.is_dir():
            raise LdmdataError(f"folder source {str(path)!r} is not a folder")
        files = [
            p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        ]
        self.files = sorted(files, key=lambda p: p.relative_to(self.path).as_posix())
        if not self.files:
            extensions = " ".join(sorted(IMAGE_EXTENSIONS))
            raise LdmdataError(f"folder source {str(path)!r} has no image files ({extensions})")
        self._sidecars = [_read_sidecars(p) for p in self.files]

    def size(self) -> int:
        return len(self.files)

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": "folder", "path": str(self.path), "count": self.size()}

    def iterate(self, start: int = 0) -> Iterator[SourceItem]:
        for index in range(start, len(self.files)):
            file = self.files[index]
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise LdmdataError(f"cannot read {file}: {exc.strerror or exc}") from exc
            captions, labels = self._sidecars[index]
            yield SourceItem(
                index=index,
                source_id=file.relative_to(self.path).as_posix(),
                data=data,
                captions=list(captions),
                labels=list(labels),
            )


def _read_sidecars(image: Path) -> tuple[list[str], list[str]]:
    """Captions and labels from ``<stem>.txt`` / ``<stem>.json`` beside ``image``."""
    captions: list[str] = []
    labels: list[str] = []
    text = image.with_suffix(".txt")
    if text.is_file():
        try:
            lines = text.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise LdmdataError(f"cannot read caption sidecar {text}: {exc}") from exc
        captions.extend(line.strip() for line in lines if line.strip())
    meta = image.with_suffix(".json")
    if meta.is_file():
        try:
            content = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LdmdataError(f"cannot read sidecar {meta}: {exc}") from exc
        if not isinstance(content, dict):
            raise LdmdataError(f"sidecar {meta} must hold a JSON object")
        captions.extend(_strings(content, "captions", meta))
        labels.extend(_strings(content, "labels", meta))
    return captions, labels


def _strings(content: dict, key: str, where: Path) -> list[str]:
    values = content.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise LdmdataError(f'sidecar {where}: "{key}" must be a list of strings')
    return [v.strip() for v in values if v.strip()]
