"""The study's released benchmark folder (``dataset/`` of jpzhang1810/LDM-Robustness).

Layout: ``images/`` (COCO photos: the img2img set), ``images_crop/`` and ``mask_crop/`` (the
inpainting crops and their masks, white on the entity; same file names), ``prompts.json``
(file name -> its edit prompts, each ending in a newline; the key order is the study's order)
and ``select_ids.txt`` (the img2img selection: a JSON list of indices into that key order, on
one or more identical lines).

Rows follow the study's attack notebooks, so the first 100 are the 100 images it attacked:
img2img takes the keys at ``select_ids.txt``'s indices (``attack_variation.ipynb``'s list),
inpaint the keys whose crop exists (``attack_inpainting.ipynb``'s list is exactly that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ldmdata.errors import LdmdataError
from ldmdata.sources.base import SourceItem

TASKS = ("img2img", "inpaint")


class LdmRobustnessSource:
    """The study's img2img set (170 photos) or inpainting set (143 crops + masks), by task."""

    curated = True  # the study's prompts, masks and squash to 512 are the benchmark

    def __init__(self, path: str | Path, task: str | None):
        self.path = Path(path)
        self.spec = f"ldm-robustness:{path}"
        if task not in TASKS:
            raise LdmdataError(
                f"{self.spec} serves the {' and '.join(TASKS)} tasks, not {task!r}"
            )
        self.task = task
        if not self.path.is_dir():
            raise LdmdataError(f"study dataset folder {str(path)!r} is not a folder")
        self.prompts = _read_prompts(self.path / "prompts.json")
        names = list(self.prompts)
        if task == "img2img":
            self.names = [names[i] for i in _read_selection(self.path / "select_ids.txt", names)]
            _require_files(self.path / "images", self.names)
        else:
            crops = self.path / "images_crop"
            _require_files(crops, [])
            self.names = [name for name in names if (crops / name).is_file()]
            if not self.names:
                raise LdmdataError(f"{crops} holds none of the images named in prompts.json")
            _require_files(self.path / "mask_crop", self.names)

    def size(self) -> int:
        return len(self.names)

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": "ldm-robustness", "path": str(self.path),
                "task": self.task, "count": self.size()}

    def iterate(self, start: int = 0) -> Iterator[SourceItem]:
        image_dir = "images" if self.task == "img2img" else "images_crop"
        for index in range(start, len(self.names)):
            name = self.names[index]
            yield SourceItem(
                index=index,
                source_id=name,
                data=_read(self.path / image_dir / name),
                prompts=list(self.prompts[name]),
                mask_data=_read(self.path / "mask_crop" / name) if self.task == "inpaint" else None,
            )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LdmdataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_prompts(path: Path) -> dict[str, list[str]]:
    """prompts.json: an object of file name -> list of prompts (whitespace stripped)."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LdmdataError(f"study dataset folder lacks {path.name} ({path})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LdmdataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(content, dict) or not content:
        raise LdmdataError(f"{path} must hold an object of image file name -> list of prompts")
    prompts = {}
    for name, values in content.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise LdmdataError(f"{path}: the prompts of {name!r} must be a list of strings")
        prompts[name] = [v.strip() for v in values if v.strip()]
        if not prompts[name]:
            raise LdmdataError(f"{path}: {name!r} has no prompt")
    return prompts


def _read_selection(path: Path, names: list[str]) -> list[int]:
    """select_ids.txt: a JSON list of distinct indices into ``names`` (repeated lines agree)."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        lists = [json.loads(line) for line in lines]
    except FileNotFoundError:
        raise LdmdataError(f"study dataset folder lacks {path.name} ({path})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LdmdataError(f"cannot read {path}: expected a JSON list of indices ({exc})") from exc
    if not lists or any(other != lists[0] for other in lists):
        raise LdmdataError(f"{path} must hold one list of indices (repeated lines must agree)")
    ids = lists[0]
    if not isinstance(ids, list) or not all(type(i) is int and 0 <= i < len(names) for i in ids):
        raise LdmdataError(f"{path}: every entry must be an index 0..{len(names) - 1} into "
                           "prompts.json's keys")
    if len(set(ids)) != len(ids):
        raise LdmdataError(f"{path}: an index appears twice")
    return ids


def _require_files(folder: Path, names: list[str]) -> None:
    if not folder.is_dir():
        raise LdmdataError(f"study dataset folder lacks {folder.name}/ ({folder})")
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise LdmdataError(f"{len(missing)} of {len(names)} images are missing from {folder} "
                           f"(first: {missing[0]})")
