"""Where data and numbers come from: code version, DVC's own hashes, and provenance records.

Every output of edit, defend, evaluate and report names each input it read by DVC's own hash
(:func:`dvc_hash`, what dvc.lock records) plus the model ids and revisions, the params and the
code version. Paths are stored relative to the project root (the nearest folder holding
``dvc.yaml`` or ``.dvc``) when they lie inside one, so a clone traces the same way.
:mod:`ldmdata.trace` walks and checks these records.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from ldmdata import __version__
from ldmdata.errors import LdmdataError

PARQUET_KEY = b"ldmdata.provenance"
HTML_MARK = "ldmdata-provenance"


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


def project_root(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` that holds ``dvc.yaml`` or ``.dvc``."""
    path = Path(path).resolve()
    for folder in [path, *path.parents]:
        if (folder / "dvc.yaml").is_file() or (folder / ".dvc").is_dir():
            return folder
    return None


def portable_path(path: Path, near: Path | None = None) -> str:
    """``path`` relative to its project root, else absolute (POSIX form).

    ``near`` is where the record is written: a path in another project (or in none) than
    ``near`` is stored absolute, so it resolves from the record's side.
    """
    path = Path(path).resolve()
    root = project_root(path.parent)
    if root is not None and (near is None or project_root(Path(near).resolve()) == root):
        return path.relative_to(root).as_posix()
    return path.as_posix()


def file_record(path: Path, role: str, near: Path | None = None) -> dict:
    """What a consumer records of a single file it read (a metrics file)."""
    return {"role": role, "path": portable_path(path, near), "kind": "file",
            "dvc_hash": dvc_hash(path)}


def provenance(inputs: dict[str, dict], models: dict[str, dict], params: dict) -> dict:
    """The block every metrics and report file carries (dicts only, so DVC plots ignore it)."""
    return {"inputs": inputs, "models": models, "params": params, "code": code_version()}


def source_fingerprint(modules: tuple[str, ...]) -> str:
    """sha256 over the source files of ``modules`` (packages or modules), for resume checks."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise LdmdataError(f"cannot find the source of {name}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(f"{name}:{path.relative_to(origin.parent).as_posix()}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def embed_html(prov: dict) -> str:
    """The provenance block as an HTML/Markdown comment (``--`` escaped inside JSON strings)."""
    text = json.dumps(prov, sort_keys=True).replace("--", "-\\u002d")
    return f"<!-- {HTML_MARK} {text} -->"


def read_provenance(path: Path) -> dict:
    """The provenance block of a metrics JSON, a per-sample parquet or a report (md/html)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise LdmdataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            meta = pq.read_schema(path).metadata or {}
            found = json.loads(meta[PARQUET_KEY]) if PARQUET_KEY in meta else None
        elif suffix in (".md", ".html", ".htm"):
            text = path.read_text()
            start = text.find(f"<!-- {HTML_MARK} ")
            found = None
            if start >= 0:
                body = text[start + len(HTML_MARK) + 6:]
                found = json.loads(body[: body.index(" -->")])
        else:
            found = json.loads(path.read_text()).get("provenance")
    except (OSError, ValueError, AttributeError) as err:
        raise LdmdataError(f"{path}: cannot read its provenance ({type(err).__name__})") from None
    if not isinstance(found, dict) or "inputs" not in found:
        raise LdmdataError(f"{path} carries no ldmdata provenance block")
    return found
