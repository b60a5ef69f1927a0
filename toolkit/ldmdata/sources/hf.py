"""A Hugging Face dataset (Hub name or local folder), streamed row by row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from ldmdata.errors import LdmdataError
from ldmdata.sources.base import SourceItem

CAPTION_COLUMNS = ("caption", "captions", "text", "sentences", "prompt", "prompts", "description")
_CAPTION_KEYS = ("raw", "text", "caption")  # caption dicts, e.g. {"raw": ...} in sentences lists


class HfSource:
    """Rows of ``datasets.load_dataset(name, config, split=split, streaming=True)``.

    The image column is the first ``Image`` feature (else the first column holding PIL images or
    ``{"bytes": ...}`` dicts); captions come from columns named like :data:`CAPTION_COLUMNS`;
    labels from the first ``ClassLabel`` column. Items carry the stored encoded bytes.
    """

    curated = False  # not a curated benchmark (see Source.curated)

    def __init__(self, name: str, config: str | None = None, split: str = "train"):
        import datasets

        self.name, self.config, self.split = name, config, split
        self.spec = f"hf:{name}:{config or ''}:{split}"
        problem = _hub_problem(name)
        if problem:
            raise LdmdataError(f"cannot open dataset {self.spec}: {problem}")
        try:
            stream = datasets.load_dataset(name, config, split=split, streaming=True)
        except Exception as exc:  # offline Hub, unknown name, bad config or split, bad files
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise LdmdataError(f"cannot open dataset {self.spec}: {reason}") from exc
        features = dict(stream.features or {})
        first = None if _image_column(features) else self._first_row(stream)
        self.image_column = _image_column(features) or _image_column_from_row(first or {})
        if self.image_column is None:
            raise LdmdataError(f"dataset {self.spec} has no image column")
        if isinstance(features.get(self.image_column), datasets.Image):
            stream = stream.cast_column(self.image_column, datasets.Image(decode=False))
        columns = list(features) or list(first or {})
        self.caption_columns = [c for c in columns if c.lower() in CAPTION_COLUMNS]
        self.label_column, self._label_names = _label_column(features)
        self._stream = stream
        splits = stream.info.splits or {}
        self._length = splits[split].num_examples if split in splits else None

    def size(self) -> int | None:
        return self._length

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "kind": "hf",
            "name": self.name,
            "config": self.config,
            "split": self.split,
            "image_column": self.image_column,
            "caption_columns": self.caption_columns,
            "label_column": self.label_column,
            "count": self._length,
        }

    def iterate(self, start: int = 0) -> Iterator[SourceItem]:
        rows = iter(self._stream.skip(start) if start else self._stream)
        index = start
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as exc:  # network or file trouble while streaming
                raise LdmdataError(f"reading {self.spec} failed at item {index}: {exc}") from exc
            yield SourceItem(
                index=index,
                source_id=f"{self.spec}:{index}",
                data=_image_bytes(row.get(self.image_column)),
                image=_pil_image(row.get(self.image_column)),
                captions=[c for col in self.caption_columns for c in _texts(row.get(col))],
                labels=self._labels(row.get(self.label_column)) if self.label_column else [],
            )
            index += 1

    def _first_row(self, stream: Any) -> dict | None:
        try:
            return next(iter(stream.take(1)), None)
        except Exception as exc:
            raise LdmdataError(f"cannot read dataset {self.spec}: {exc}") from exc

    def _labels(self, value: Any) -> list[str]:
        values = value if isinstance(value, list) else [value]
        names = self._label_names
        return [names[v] for v in values if isinstance(v, int) and 0 <= v < len(names)]


def _hub_problem(name: str) -> str | None:
    """Why the Hub cannot serve dataset ``name`` right now, asked once without retries.

    A local folder, or offline mode (the local cache), needs no Hub: None. Otherwise one quick
    request: an unreachable Hub answers at once instead of after ``datasets``' retries.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if Path(name).expanduser().exists() or constants.is_offline_mode():
        return None
    try:
        HfApi().dataset_info(name, timeout=10)
    except GatedRepoError:
        return "the dataset is gated: accept its terms on the Hub and log in (hf auth login)"
    except RepositoryNotFoundError:
        return "no such dataset on the Hub (or it is private and no token is set)"
    except Exception as exc:  # network trouble of any kind: one plain line
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return (f"the Hugging Face Hub cannot be reached ({reason}); with HF_HUB_OFFLINE=1 "
                "only the local cache is used")
    return None


def _image_column(features: dict) -> str | None:
    import datasets

    return next((c for c, f in features.items() if isinstance(f, datasets.Image)), None)


def _image_column_from_row(row: dict) -> str | None:
    for column, value in row.items():
        if isinstance(value, Image.Image) or (isinstance(value, dict) and "bytes" in value):
            return column
    return None


def _label_column(features: dict) -> tuple[str | None, list[str]]:
    """The first ClassLabel column (or list of ClassLabel) and its names."""
    import datasets

    for column, feature in features.items():
        inner = getattr(feature, "feature", feature)
        if isinstance(inner, datasets.ClassLabel):
            return column, list(inner.names)
    return None, []


def _pil_image(value: Any) -> Image.Image | None:
    """An image cell that ``datasets`` already decoded (decoding checks it like any input)."""
    return value if isinstance(value, Image.Image) else None


def _image_bytes(value: Any) -> bytes | None:
    """Encoded bytes of an image cell; ``None`` when the row has no stored bytes."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        path = value.get("path")
        if path and Path(path).is_file():
            return Path(path).read_bytes()
    return None


def _texts(value: Any) -> list[str]:
    """Caption strings from a str, a list of str, or a list of caption dicts."""
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, dict):
        text = next((value[k] for k in _CAPTION_KEYS if isinstance(value.get(k), str)), None)
        return _texts(text) if text else []
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []
