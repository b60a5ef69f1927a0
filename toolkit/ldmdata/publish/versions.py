"""Open any git revision of a DVC-tracked dataset folder as a ``datasets.Dataset``.

The shards of that revision are read through :class:`dvc.api.DVCFileSystem` (from the local DVC
cache, or fetched from the DVC remote when missing there) into a shard cache named by each
shard's sha256, checked against the revision's manifest, then loaded with ``datasets``.

Which DVC remote holds a revision's data is DVC's rule: the remote named in that revision's
own ``.dvc/config`` (plus the working tree's uncommitted ``.dvc/config.local``). So add and
commit the remote before committing the versions you want to share, and ``dvc push`` each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets

from ldmdata.dataset.hashing import file_sha256
from ldmdata.errors import LdmdataError


def default_cache_dir() -> Path:
    """Where fetched shards are kept: ``$XDG_CACHE_HOME/ldmdata/shards`` (or ~/.cache/...)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ldmdata" / "shards"


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _repo_and_path(path: str | os.PathLike, repo: str | os.PathLike | None) -> tuple[str, str]:
    """The repo to open and ``path`` relative to its root (posix)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    if repo is not None:
        return str(repo), Path(path).as_posix().lstrip("/")
    try:
        root = Path(Repo.find_root()).resolve()
    except NotDvcRepoError:
        raise LdmdataError(
            f"{Path.cwd()} is not inside a DVC repository; pass repo= (a path or git URL)"
        ) from None
    target = Path(path).resolve()
    if not target.is_relative_to(root):
        raise LdmdataError(f"{path} is outside the DVC repository at {root}")
    return str(root), target.relative_to(root).as_posix()


def open_dataset(
    path: str | os.PathLike,
    rev: str | None = None,
    repo: str | os.PathLike | None = None,
    cache_dir: Path | None = None,
    remote: str | None = None,
) -> datasets.Dataset:
    """The dataset folder ``path`` as it was at git revision ``rev``, as a ``datasets.Dataset``.

    ``repo`` is a DVC repo (local path or git URL) and ``path`` is relative to its root; with no
    ``repo``, the repo around the current folder is used and ``path`` is relative to the current
    folder. ``rev`` is any git revision (tag, branch, commit); None means the working tree for a
    local repo. ``remote`` names the DVC remote to fetch from (default: the revision's default).
    Shards are kept in ``cache_dir`` (default :func:`default_cache_dir`) under their sha256.
    Unknown revisions, missing datasets and unreachable data raise LdmdataError.
    """
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc.scm import RevError
    from dvc_data.index.index import DataIndexError

    repo_url, rel = _repo_and_path(path, repo)
    where = f"{rel}@{rev}" if rev else rel
    fs = DVCFileSystem(repo_url, rev=rev, remote=remote)
    unreachable = (DvcException, DataIndexError, OSError)

    def fetch_error(name: str, err: Exception) -> LdmdataError:
        return LdmdataError(
            f"cannot fetch {where}/{name} (is it pushed to the DVC remote?): {_first_line(err)}"
        )

    try:
        manifest = json.loads(fs.read_bytes(f"{rel}/manifest.json"))
    except RevError:
        raise LdmdataError(f"revision {rev!r} does not exist in {repo_url}") from None
    except FileNotFoundError as err:
        if fs.exists(f"{rel}/manifest.json"):  # listed at that revision, bytes unreachable
            raise fetch_error("manifest.json", err) from None
        raise LdmdataError(f"{where}: no ldmdata dataset there (no manifest.json)") from None
    except json.JSONDecodeError as err:
        raise LdmdataError(f"{where}/manifest.json is not valid JSON: {err.msg}") from None
    except unreachable as err:
        raise fetch_error("manifest.json", err) from None

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    files = []
    for shard in manifest["shards"]:
        local = cache / f"{shard['sha256']}.parquet"
        if not local.is_file():
            tmp = cache / f".{shard['sha256']}.{os.getpid()}.tmp"
            try:
                fs.get_file(f"{rel}/{shard['file']}", str(tmp))
            except unreachable as err:
                tmp.unlink(missing_ok=True)
                raise fetch_error(shard["file"], err) from None
            if file_sha256(tmp) != shard["sha256"]:
                tmp.unlink()
                raise LdmdataError(f"{where}/{shard['file']}: sha256 differs from its manifest")
            os.replace(tmp, local)
        files.append(str(local))
    split = manifest["split"]
    features = datasets.Features.from_dict(manifest["features"])
    if not files:
        return datasets.Dataset.from_list([], features=features, split=split)
    return datasets.load_dataset(
        "parquet",
        data_files={split: files},
        split=split,
        features=features,
    )
