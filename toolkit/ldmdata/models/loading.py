"""Load a :class:`ModelRef` with ``from_pretrained``; every failure becomes one clear line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from diffusers.utils import logging as diffusers_logging
from huggingface_hub import HfApi, constants, try_to_load_from_cache
from transformers.utils import logging as transformers_logging

from ldmdata.errors import LdmdataError
from ldmdata.models.refs import ModelRef


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No diffusers/transformers loading bars while loading (they would break our output)."""
    states = [(lib, lib.is_progress_bar_enabled())
              for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in states:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in states:
            if enabled:
                lib.enable_progress_bar()


def is_local(model_id: str) -> bool:
    """True when ``model_id`` names a local file or folder rather than a Hub id ("org/name")."""
    if Path(model_id).expanduser().exists():
        return True
    return (
        Path(model_id).is_absolute()
        or model_id.startswith((".", "~"))
        or model_id.count("/") > 1
        or "\\" in model_id
    )


def hub_offline() -> bool:
    """Whether the Hub is switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, now or at import)."""
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.is_offline_mode() or any(
        (v or "").strip().upper() in {"1", "ON", "YES", "TRUE"} for v in flags
    )


def load_error(ref: ModelRef, reason: str) -> LdmdataError:
    """The one-line error for a model that cannot be loaded."""
    return LdmdataError(
        f"cannot load {ref.role} model '{ref.id}' (revision {ref.revision or 'main'}): {reason}"
    )


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else "no details"
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}"


def _local_problem(ref: ModelRef, config_name: str) -> str | None:
    path = Path(ref.id).expanduser()
    if not path.exists():
        return "no such file or folder"
    if path.is_dir() and not (path / config_name).is_file():
        return f"the folder has no {config_name}"
    return None


def _hub_problem(ref: ModelRef, config_name: str, ask_hub: bool) -> str | None:
    try:
        cached = try_to_load_from_cache(ref.id, config_name, revision=ref.revision)
    except ValueError as exc:
        return _short(exc)
    if isinstance(cached, str):
        return None
    if hub_offline():
        return "not in the local Hugging Face cache and HF_HUB_OFFLINE=1"
    if not ask_hub:
        return None
    try:
        found = HfApi().file_exists(ref.id, config_name, revision=ref.revision)
    except Exception as exc:  # any network or Hub error means: cannot load
        return _short(exc)
    return None if found else f"no {config_name} in this repository at this revision"


def resolved_commit(ref: ModelRef, config_name: str = "config.json",
                    cache_dir: str | None = None) -> str | None:
    """The commit a Hub ``ref`` (e.g. revision ``main``) resolves to in the local Hub cache.

    None for a local folder, or when the cache does not hold it. The cache lays a repository
    out as ``models--ORG--NAME/snapshots/<commit>/`` and the file's path names the commit.
    """
    if is_local(ref.id):
        return None
    try:
        path = try_to_load_from_cache(ref.id, config_name, cache_dir=cache_dir,
                                      revision=ref.revision)
    except ValueError:
        return None
    if not isinstance(path, str) or "snapshots" not in Path(path).parts:
        return None
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1]


def check_loadable(ref: ModelRef, config_name: str = "config.json") -> None:
    """Fail fast, without loading weights, when ``ref`` cannot be loaded.

    A local folder must hold ``config_name`` (a local file is accepted as is); a Hub id must be in
    the local cache, or, when the Hub is reachable, hold ``config_name`` at the revision.
    """
    if is_local(ref.id):
        problem = _local_problem(ref, config_name)
    else:
        problem = _hub_problem(ref, config_name, ask_hub=True)
    if problem:
        raise load_error(ref, problem)


def load_pretrained(
    cls: Any, ref: ModelRef, *, weights: bool = True, config_name: str = "config.json", **kwargs
) -> Any:
    """``cls.from_pretrained(ref.id, revision=ref.revision, ...)`` with one-line errors.

    ``weights=True`` (models) adds ``use_safetensors=True`` so no pickle is ever read; processors
    and tokenizers pass ``weights=False``.
    """
    if is_local(ref.id):
        problem = _local_problem(ref, config_name)
        source = str(Path(ref.id).expanduser())
    else:
        problem = _hub_problem(ref, config_name, ask_hub=False)
        source = ref.id
    if problem:
        raise load_error(ref, problem)
    if weights:
        kwargs["use_safetensors"] = True
    if ref.revision:
        kwargs["revision"] = ref.revision
    try:
        with quiet_loading():
            return cls.from_pretrained(source, **kwargs)
    except Exception as exc:  # any failure to load is the user's to fix: one line
        raise load_error(ref, _short(exc)) from exc
