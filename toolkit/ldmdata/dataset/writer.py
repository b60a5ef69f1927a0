"""Atomic, resumable, locked writing of a sharded parquet dataset.

Layout of a finished dataset folder::

    data/train-00000.parquet ...   shards of ``shard_size`` rows (datasets Image columns as PNG)
    manifest.json                  kind, counts, schema, shards + sha256, content_hash, provenance
    rejects.jsonl                  one line per skipped input: index, source_id, reason

While a build runs, ``.partial/`` holds the build's config and one commit record per finished
shard (its sha256, row digests, the input cursor after it and the rejects before it). A shard
counts only once its record exists, so a killed build resumes from the last committed shard;
the caller restarts its input stream from :attr:`ShardedWriter.cursor`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from ldmdata.dataset.hashing import content_hash, file_sha256, row_digest
from ldmdata.errors import LdmdataError

if TYPE_CHECKING:
    import datasets

FORMAT_VERSION = 1
SPLIT = "train"
ROW_GROUP_SIZE = 100
PARTIAL = ".partial"
LOCK = ".lock"


def shard_name(index: int) -> str:
    return f"data/{SPLIT}-{index:05d}.parquet"


def write_json_atomic(path: Path, payload) -> None:
    """Write JSON to a temp file, then rename: readers see the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with disk_errors(path):
            tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=True) + "\n")
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def disk_errors(path: Path):
    """A full disk or a read-only folder becomes one line for the user (LdmdataError)."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        raise LdmdataError(
            f"cannot write {path}: {os.strerror(err.errno)}; finished shards are kept, free "
            "space and run the same command again to resume"
        ) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM while writing: unwinds like Ctrl-C, so the open shard is discarded."""


@contextmanager
def sigterm_interrupts():
    """In the main thread, turn SIGTERM into :class:`Terminated` while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _image_cell(value) -> dict:
    if isinstance(value, bytes):
        return {"bytes": value, "path": None}
    raise TypeError("image columns take PNG bytes (encode with ldmdata.dataset.png.encode_png)")


class ShardedWriter:
    """Write rows into ``out_dir`` in shards; resume, lock and finish atomically.

    Use as a context manager. Feed rows with :meth:`add` and skipped inputs with
    :meth:`reject` in input order; when :meth:`add` returns True a shard was committed and
    the caller must continue from :attr:`cursor` (dropping any work done past it), so a
    resumed build sees exactly the same input batches as an uninterrupted one.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        kind: str,
        features: datasets.Features,
        config: dict,
        shard_size: int = 1000,
        overwrite: bool = False,
        unhashed: tuple[str, ...] = (),
    ):
        """``overwrite``: replace what ``out_dir`` holds when it was made with other settings
        (the same settings resume, or are found up to date). ``unhashed``: columns left out of
        the row digests (measurements like seconds), listed in the manifest."""
        if shard_size <= 0:
            raise LdmdataError(f"shard_size must be positive, got {shard_size}")
        self.out_dir = Path(out_dir)
        self.kind = kind
        self.features = features
        self.schema = features.arrow_schema
        import datasets  # the caller made ``features`` with it, so it is loaded already

        self.image_columns = [k for k, v in features.items() if isinstance(v, datasets.Image)]
        self.config = json.loads(json.dumps(config, sort_keys=True))
        self.shard_size = shard_size
        self.overwrite = overwrite
        self.unhashed = tuple(unhashed)
        self.complete_manifest: dict | None = None
        self._created_dir = False
        self._lock: FileLock | None = None
        self._shards: list[dict] = []
        self._pending_rows = 0
        self._pending_digests: list[str] = []
        self._pending_rejects: list[dict] = []
        self._batch: list[dict] = []
        self._parquet: pq.ParquetWriter | None = None
        self._signals = sigterm_interrupts()
        self.cursor = 0

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> ShardedWriter:
        self._signals.__enter__()
        try:
            return self._open()
        except BaseException:
            self._signals.__exit__(None, None, None)
            raise

    def _open(self) -> ShardedWriter:
        self._prepare_folder()
        self._lock = FileLock(str(self.out_dir / LOCK), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            raise LdmdataError(
                f"{self.out_dir} is being written by another process; wait for it to finish"
            ) from None
        try:
            self._load_state()
        except BaseException:
            self._release_lock()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._discard_open_shard()
            if exc_type is not None and self._created_dir and not self._shards:
                self._release_lock()
                shutil.rmtree(self.out_dir, ignore_errors=True)
                return
            self._release_lock()
        finally:
            self._signals.__exit__(None, None, None)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.complete_manifest is not None:
            (self.out_dir / LOCK).unlink(missing_ok=True)

    def _prepare_folder(self) -> None:
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise LdmdataError(f"{out} exists and is not a folder")
        if not out.exists():
            out.mkdir(parents=True)
            self._created_dir = True
        else:
            self._check_ours(out)
        (out / "data").mkdir(exist_ok=True)

    @staticmethod
    def _check_ours(out: Path) -> None:
        entries = {p.name for p in out.iterdir()}
        if entries and not entries & {"manifest.json", PARTIAL, LOCK}:
            raise LdmdataError(
                f"{out} is not empty and holds no ldmdata dataset; choose a new or empty folder"
            )

    def _load_state(self) -> None:
        manifest_path = self.out_dir / "manifest.json"
        partial = self.out_dir / PARTIAL
        config_path = partial / "config.json"
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("config") == self.config:
                self.complete_manifest = manifest
                shutil.rmtree(partial, ignore_errors=True)
                return
            self._replace_or_refuse("a finished dataset")
        elif config_path.exists() and json.loads(config_path.read_text()) != self.config:
            self._replace_or_refuse("an unfinished build")
        partial.mkdir(exist_ok=True)
        if not config_path.exists():
            write_json_atomic(config_path, self.config)
        index = 0
        while (record := partial / f"shard-{index:05d}.json").exists():
            shard = json.loads(record.read_text())
            path = self.out_dir / shard["file"]
            if not path.exists() or file_sha256(path) != shard["sha256"]:
                break  # a damaged commit: redo from here
            self._shards.append(shard)
            index += 1
        for stale in sorted(partial.glob("shard-*.json"))[index:]:
            stale.unlink()
        committed = {s["file"] for s in self._shards}
        for path in (self.out_dir / "data").iterdir():
            if f"data/{path.name}" not in committed:
                path.unlink()
        self.cursor = self._shards[-1]["cursor"] if self._shards else 0

    def _replace_or_refuse(self, what: str) -> None:
        """Settings differ from what ``out_dir`` holds: clear it (overwrite) or refuse."""
        if not self.overwrite:
            raise LdmdataError(
                f"{self.out_dir} holds {what} made with other settings; "
                "use --overwrite to replace it, or another folder"
            )
        for entry in self.out_dir.iterdir():
            if entry.name != LOCK:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        (self.out_dir / "data").mkdir()

    # -- writing ---------------------------------------------------------------------------
    @property
    def n_written(self) -> int:
        return sum(s["n"] for s in self._shards) + self._pending_rows

    @property
    def n_rejected(self) -> int:
        return sum(len(s["rejects"]) for s in self._shards) + len(self._pending_rejects)

    def reject_reasons(self) -> list[str]:
        """The reasons of every reject so far, committed and pending."""
        return [r["reason"] for s in self._shards for r in s["rejects"]] + [
            r["reason"] for r in self._pending_rejects
        ]

    def add(self, row: dict, cursor: int) -> bool:
        """Append one row; ``cursor`` is the input position just after it. True = shard closed."""
        if self.complete_manifest is not None:
            raise RuntimeError("the dataset is complete; check complete_manifest before writing")
        row = {k: (_image_cell(v) if k in self.image_columns else v) for k, v in row.items()}
        if set(row) != set(self.schema.names):
            missing, extra = set(self.schema.names) - set(row), set(row) - set(self.schema.names)
            raise ValueError(f"row columns differ from the schema: missing {missing}, "
                             f"extra {extra}")
        self._batch.append(row)
        self._pending_rows += 1
        if len(self._batch) >= ROW_GROUP_SIZE:
            self._flush_batch()
        if self._pending_rows >= self.shard_size:
            self._commit_shard(cursor)
            return True
        return False

    def reject(self, index: int, source_id: str, reason: str) -> None:
        """Record a skipped input (in input order, between the rows around it)."""
        self._pending_rejects.append({"index": index, "source_id": source_id, "reason": reason})

    def _tmp_path(self) -> Path:
        return self.out_dir / "data" / f".{SPLIT}-{len(self._shards):05d}.parquet.tmp"

    def _flush_batch(self) -> None:
        if not self._batch:
            return
        table = pa.Table.from_pylist(self._batch, schema=self.schema)
        self._pending_digests.extend(row_digest(r, self.unhashed) for r in table.to_pylist())
        with disk_errors(self._tmp_path()):
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._tmp_path(), self.schema,
                                                 compression="zstd")
            self._parquet.write_table(table, row_group_size=ROW_GROUP_SIZE)
        self._batch = []

    def _commit_shard(self, cursor: int) -> None:
        self._flush_batch()
        name = shard_name(len(self._shards))
        with disk_errors(self.out_dir / name):
            self._parquet.close()
            self._parquet = None
            os.replace(self._tmp_path(), self.out_dir / name)
        shard = {
            "file": name,
            "n": self._pending_rows,
            "sha256": file_sha256(self.out_dir / name),
            "cursor": cursor,
            "rejects": self._pending_rejects,
            "row_digests": self._pending_digests,
        }
        write_json_atomic(self.out_dir / PARTIAL / f"shard-{len(self._shards):05d}.json", shard)
        self._shards.append(shard)
        self.cursor = cursor
        self._pending_rows, self._pending_digests, self._pending_rejects = 0, [], []

    def _discard_open_shard(self) -> None:
        if self._parquet is not None:
            try:
                self._parquet.close()
            except OSError:  # e.g. a full disk: the file is removed below anyway
                pass
            self._parquet = None
        self._tmp_path().unlink(missing_ok=True)

    def finish(self, cursor: int, extra: dict) -> dict:
        """Commit the last shard, write rejects.jsonl and manifest.json; returns the manifest."""
        if self._pending_rows:
            self._commit_shard(cursor)
        rejects = [r for s in self._shards for r in s["rejects"]] + self._pending_rejects
        tmp = self.out_dir / ".rejects.jsonl.tmp"
        try:
            with disk_errors(self.out_dir / "rejects.jsonl"):
                tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects))
                os.replace(tmp, self.out_dir / "rejects.jsonl")
        finally:
            tmp.unlink(missing_ok=True)
        reasons: dict[str, int] = {}
        for r in rejects:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        digests = [d for s in self._shards for d in s["row_digests"]]
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "n": len(digests),
            "split": SPLIT,
            "features": self.features.to_dict(),
            "shards": [
                {"file": s["file"], "n": s["n"], "sha256": s["sha256"]} for s in self._shards
            ],
            "content_hash": content_hash(digests),
            **({"unhashed_columns": list(self.unhashed)} if self.unhashed else {}),
            "rejects": {"count": len(rejects), "by_reason": dict(sorted(reasons.items()))},
            "config": self.config,
            **extra,
        }
        write_json_atomic(self.out_dir / "manifest.json", manifest)
        shutil.rmtree(self.out_dir / PARTIAL, ignore_errors=True)
        self.complete_manifest = manifest
        return manifest
