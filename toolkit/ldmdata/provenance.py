"""Where data and numbers come from: code version and DVC's own hash of a folder."""

from __future__ import annotations

import subprocess
import tempfile
from functools import cache
from pathlib import Path

from ldmdata import __version__


@cache
def code_version() -> dict:
    """The package version and, inside a git checkout, the commit and whether it is dirty."""
    info = {"ldmdata": __version__}
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=here, capture_output=True, text=True, check=True,
        ).stdout.strip()
        info.update(git_commit=commit, git_dirty=bool(dirty))
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def dvc_hash(path: Path) -> str:
    """DVC's md5 for a file or folder (``<md5>.dir`` for folders), as dvc.lock records it."""
    from dvc_data.hashfile.build import build  # on use: dvc_data takes a second to import
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.hash import hash_file
    from dvc_objects.fs import LocalFileSystem

    fs = LocalFileSystem()
    path = Path(path).resolve()
    if path.is_file():
        return hash_file(str(path), fs, "md5")[1].value
    with tempfile.TemporaryDirectory() as tmp:
        odb = HashFileDB(fs, tmp)
        _, _, obj = build(odb, str(path), fs, "md5")
    return obj.hash_info.value
