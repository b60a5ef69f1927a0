"""``trace``: walk a metrics or report file back to its source data, checking every link.

:func:`trace` follows the provenance records (:mod:`ldmdata.provenance`) from a metrics or
report file through the manifests (edits -> adversarial/defended set -> dataset -> source) and
checks every link three ways: the hash recorded downstream, the files on disk (re-hashed, and a
sharded set re-verified against its manifest) and dvc.lock's entry for the path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ldmdata.dataset import read_manifest, verify
from ldmdata.errors import LdmdataError
from ldmdata.provenance import dvc_hash, project_root, read_provenance

# The order a link's inputs are walked in (depth first), so the chain reads downstream-first.
ROLE_ORDER = ["metrics", "edits", "defended", "adversarial", "clean", "reference_edits",
              "dataset"]


@dataclass
class Link:
    """One file or folder of the chain and what is wrong with it (nothing, when ``ok``)."""

    role: str
    path: str
    depth: int
    kind: str = ""
    disk_hash: str | None = None
    lock_stages: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    note: str = ""
    recorded_by: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class TraceReport:
    links: list[Link]
    lock_file: Path | None

    @property
    def broken(self) -> Link | None:
        """The first broken link, walking back from the traced file."""
        return next((link for link in self.links if not link.ok), None)

    def lines(self) -> list[str]:
        out = []
        for link in self.links:
            status = "ok    " if link.ok else "BROKEN"
            where = f"  [dvc.lock: {', '.join(link.lock_stages)}]" if link.lock_stages else ""
            hashed = f"  md5 {link.disk_hash}" if link.disk_hash else ""
            indent = "  " * link.depth + ("<- " if link.depth else "")
            out.append(f"{status} {indent}{link.role} {link.path}{hashed}{where}")
            if link.note:
                out.append(f"       {'  ' * link.depth}   {link.note}")
            for problem in link.problems:
                out.append(f"       {'  ' * link.depth}   ! {problem}")
        broken = self.broken
        if broken is None:
            lock = f"and {self.lock_file}" if self.lock_file else "(no dvc.lock found)"
            out.append(f"chain intact: {len(self.links)} links match the files on disk {lock}")
        else:
            out.append(f"broken link: {broken.role} {broken.path}: {broken.problems[0]}")
        return out


class _Lock:
    """dvc.lock's recorded md5 per path: as a stage output and as a stage dependency."""

    def __init__(self, path: Path | None):
        self.path = path
        self._hashes: dict[str, str] = {}
        self.outs: dict[str, list[tuple[str, str]]] = {}
        self.deps: dict[str, list[tuple[str, str]]] = {}
        if path is None or not path.is_file():
            self.path = None
            return
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise LdmdataError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
        for stage, entry in (data.get("stages") or {}).items():
            for key, target in (("outs", self.outs), ("deps", self.deps)):
                for item in entry.get(key) or []:
                    if "md5" in item:
                        target.setdefault(item["path"].rstrip("/"), []).append(
                            (stage, item["md5"]))

    def hash_of(self, relative: str) -> str | None:
        """DVC's hash of a path relative to the lock's folder (once per path)."""
        if relative not in self._hashes:
            path = self.path.parent / relative
            self._hashes[relative] = dvc_hash(path) if path.exists() else None
        return self._hashes[relative]


def _resolve(recorded: str, root: Path | None) -> Path:
    path = Path(recorded)
    if path.is_absolute():
        return path
    if root is not None and (root / path).exists():
        return root / path
    return path.resolve()


def _relative(path: Path, root: Path | None) -> str:
    path = path.resolve()
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return path.as_posix()


def _children(path: Path, kind: str) -> tuple[list[dict], str]:
    """The records a set's manifest (or a file's provenance) names, and a note for sources."""
    if kind == "file":
        return list(read_provenance(path)["inputs"].values()), ""
    manifest = read_manifest(path)
    if manifest.get("kind") == "edit":
        return list(manifest["inputs"].values()), ""
    if manifest.get("kind") == "attack":
        given = manifest.get("input") or {}
        return [{**given, "role": "dataset"}], ""
    if manifest.get("kind") == "defended":
        given = manifest.get("input") or {}
        role = "adversarial" if given.get("kind") == "attack" else "dataset"
        return [{**given, "role": role}], ""
    source = manifest.get("source")
    note = f"source: {json.dumps(source, sort_keys=True)}" if source else "source: not recorded"
    return [], note


def trace(target: Path, lock_file: Path | None = None) -> TraceReport:
    """Check ``target`` (a metrics/report file or a set folder) and everything it came from."""
    target = Path(target)
    if not target.exists():
        raise LdmdataError(f"{target}: no such file or folder")
    if target.is_file():  # not an ldmdata metrics or report file: a user error, not a link
        read_provenance(target)
    else:
        read_manifest(target)
    root = project_root(target.parent if target.is_file() else target)
    lock = _Lock(lock_file or (root / "dvc.lock" if root else None))
    links: list[Link] = []
    by_path: dict[Path, Link] = {}
    stack: list[tuple[Path, str, int, str | None, str]] = [
        (target.resolve(), "file" if target.is_file() else "set", 0, None, "")]
    while stack:
        path, role, depth, recorded, parent = stack.pop()
        link = by_path.get(path)
        if link is None:
            link = Link(role, _relative(path, root), depth)
            by_path[path] = link
            links.append(link)
            expand = _check(link, path, lock)
        else:
            expand = False
        if recorded is not None and link.disk_hash is not None and recorded != link.disk_hash:
            link.recorded_by.setdefault(recorded, [])
            if parent not in link.recorded_by[recorded]:
                link.recorded_by[recorded].append(parent)
        if not expand:
            continue
        try:
            children, link.note = _children(path, "file" if path.is_file() else "set")
        except LdmdataError as err:
            link.problems.append(str(err))
            continue
        children.sort(key=lambda r: ROLE_ORDER.index(r.get("role"))
                      if r.get("role") in ROLE_ORDER else len(ROLE_ORDER))
        for record in reversed(children):  # depth first, in ROLE_ORDER
            if not record.get("path"):
                link.problems.append(f"an input ({record.get('role')}) has no recorded path")
                continue
            near = project_root(path if path.is_dir() else path.parent)
            stack.append((_resolve(record["path"], near).resolve(), record.get("role", "input"),
                          depth + 1, record.get("dvc_hash"), f"{link.role} {link.path}"))
    for link in links:
        for recorded, parents in link.recorded_by.items():
            link.problems.append(f"recorded as {recorded} by {'; '.join(parents)}, but the "
                                 f"files now hash to {link.disk_hash}")
    return TraceReport(links, lock.path)


def _check(link: Link, path: Path, lock: _Lock) -> bool:
    """Hash ``path``, verify a set against its manifest, compare with dvc.lock; expand it?"""
    if not path.exists():
        link.problems.append("missing on disk")
        return False
    link.disk_hash = dvc_hash(path)
    if path.is_dir():
        try:
            link.kind = read_manifest(path).get("kind", "")
            link.problems.extend(verify(path))
        except LdmdataError as err:
            link.problems.append(str(err))
            return False
        except Exception as err:  # a damaged set names itself, not a traceback
            link.problems.append(f"cannot verify ({type(err).__name__})")
    for stage, md5 in lock.outs.get(link.path, []):
        link.lock_stages.append(stage)
        if md5 != link.disk_hash:
            link.problems.append(
                f"dvc.lock (stage {stage}) records {md5} but the files hash to {link.disk_hash}: "
                "dvc.lock is stale or the files were changed outside DVC"
            )
    for stage, md5 in lock.deps.get(link.path, []):
        if md5 != link.disk_hash:
            link.problems.append(
                f"dvc.lock (stage {stage}) ran on version {md5} of this input, the files now "
                f"hash to {link.disk_hash}: dvc.lock is stale (run dvc repro)"
            )
    if not link.lock_stages:
        _check_container(link, lock)
    return True


def _check_container(link: Link, lock: _Lock) -> None:
    """A path inside a stage's output folder: check that folder against dvc.lock."""
    parts = link.path.split("/")
    for cut in range(len(parts) - 1, 0, -1):
        parent = "/".join(parts[:cut])
        if parent not in lock.outs:
            continue
        disk = lock.hash_of(parent)
        for stage, md5 in lock.outs[parent]:
            link.lock_stages.append(f"{stage} ({parent})")
            if md5 != disk:
                link.problems.append(
                    f"dvc.lock (stage {stage}) records {md5} for {parent}, which holds this "
                    f"path, but it hashes to {disk}: dvc.lock is stale or the files were "
                    "changed outside DVC"
                )
        return
