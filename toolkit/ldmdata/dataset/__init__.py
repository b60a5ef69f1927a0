"""The on-disk dataset format: sharded parquet + manifest.json + rejects.jsonl."""

from ldmdata.dataset.reader import iter_rows, load, read_input_manifest, read_manifest, verify
from ldmdata.dataset.writer import ShardedWriter

__all__ = ["ShardedWriter", "iter_rows", "load", "read_input_manifest", "read_manifest", "verify"]
