"""The sharded writer: layout, hashing, resume, locking, verify, datasets round trip."""

import json
import shutil

import datasets
import pytest
from datasets import Features, Image, List, Value
from filelock import FileLock
from PIL import Image as PILImage

from ldmdata.dataset import ShardedWriter, iter_rows, load, read_manifest, verify
from ldmdata.dataset.png import encode_png
from ldmdata.errors import LdmdataError

FEATURES = Features({
    "id": Value("string"), "image": Image(), "mask": Image(), "score": Value("float32"),
    "prompts": List(Value("string")),
})


def make_row(i: int) -> dict:
    image = PILImage.new("RGB", (16, 12), (i % 256, 10, 200))
    mask = PILImage.new("L", (16, 12), 255 if i % 2 else 0)
    return {"id": f"r{i}", "image": encode_png(image), "mask": encode_png(mask),
            "score": i / 3, "prompts": [f"p{i}", "q"]}


def write(folder, n=25, shard_size=10, config=None, stop_after=None, rejects=()):
    with ShardedWriter(folder, kind="toy", features=FEATURES, config=config or {"a": 1},
                       shard_size=shard_size) as writer:
        if writer.complete_manifest is not None:
            return writer.complete_manifest
        for i in range(writer.cursor, n):
            if stop_after is not None and writer.n_written >= stop_after:
                raise KeyboardInterrupt
            if i in rejects:
                writer.reject(i, f"src{i}", "bad")
                continue
            writer.add(make_row(i), i + 1)
        return writer.finish(n, {"task": "toy"})


def test_layout_manifest_and_rejects(tmp_path):
    out = tmp_path / "ds"
    manifest = write(out, rejects={3, 17})
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "train-00000.parquet", "train-00001.parquet", "train-00002.parquet"]
    assert manifest["n"] == 23 and [s["n"] for s in manifest["shards"]] == [10, 10, 3]
    assert manifest["rejects"] == {"count": 2, "by_reason": {"bad": 2}}
    lines = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["source_id"] for r in lines] == ["src3", "src17"]
    assert not (out / ".partial").exists() and not (out / ".lock").exists()
    assert read_manifest(out) == manifest
    assert verify(out) == []


def test_content_hash_is_deterministic_and_independent_of_sharding(tmp_path):
    a = write(tmp_path / "a", shard_size=10)
    b = write(tmp_path / "b", shard_size=7)
    assert a["content_hash"] == b["content_hash"]
    assert a["shards"][0]["sha256"] != b["shards"][0]["sha256"]


def test_killed_build_resumes_to_the_same_hash(tmp_path):
    reference = write(tmp_path / "ref", rejects={4})
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        write(out, stop_after=15, rejects={4})
    assert (out / ".partial" / "shard-00000.json").exists()
    assert not (out / "manifest.json").exists()
    resumed = write(out, rejects={4})
    assert resumed["content_hash"] == reference["content_hash"]
    assert [r["id"] for r in iter_rows(out, columns=["id"])] == [
        r["id"] for r in iter_rows(tmp_path / "ref", columns=["id"])]
    assert (out / "rejects.jsonl").read_text() == (tmp_path / "ref" / "rejects.jsonl").read_text()


def test_damaged_last_shard_is_redone(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        write(out, stop_after=20)
    (out / "data" / "train-00001.parquet").write_bytes(b"garbage")
    resumed = write(out)
    assert resumed["content_hash"] == write(tmp_path / "ref")["content_hash"]


def test_other_settings_refuse_then_overwrite(tmp_path):
    out = tmp_path / "ds"
    write(out)
    assert write(out)["n"] == 25  # same settings: up to date
    with pytest.raises(LdmdataError, match="other settings"):
        write(out, config={"a": 2})
    with ShardedWriter(out, kind="toy", features=FEATURES, config={"a": 2}, shard_size=10,
                       overwrite=True) as writer:
        writer.add(make_row(0), 1)
        manifest = writer.finish(1, {})
    assert manifest["n"] == 1 and len(list((out / "data").iterdir())) == 1


def test_second_writer_is_refused_while_one_runs(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    held = FileLock(str(out / ".lock"))
    held.acquire()
    try:
        with pytest.raises(LdmdataError, match="another process"):
            write(out)
    finally:
        held.release()


def test_foreign_folder_is_refused_and_failed_new_folder_removed(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(LdmdataError, match="not empty"):
        write(foreign)
    assert (foreign / "notes.txt").exists()
    new = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        write(new, stop_after=0)
    assert not new.exists()


def test_verify_names_the_first_mismatch(tmp_path):
    out = tmp_path / "ds"
    write(out)
    shard = out / "data" / "train-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    assert verify(out)[0].startswith("data/train-00001.parquet: sha256 differs")
    shutil.copy(out / "data" / "train-00000.parquet", out / "data" / "train-00009.parquet")
    assert any("not listed" in p for p in verify(out))
    with pytest.raises(LdmdataError, match="not a finished"):
        verify(tmp_path)


def test_datasets_loads_the_folder_with_image_features(tmp_path):
    out = tmp_path / "ds"
    write(out)
    for ds in (datasets.load_dataset(str(out), split="train"), load(out),
               datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"),
                                     split="train")):
        assert ds.num_rows == 25
        assert isinstance(ds.features["image"], Image) and isinstance(ds.features["mask"], Image)
        row = ds[3]
        assert row["image"].size == (16, 12) and row["mask"].mode == "L"
        assert row["prompts"] == ["p3", "q"]


def test_unhashed_columns_stay_out_of_the_content_hash(tmp_path):
    features = Features({**FEATURES, "seconds": Value("float64")})

    def timed(folder, seconds):
        with ShardedWriter(folder, kind="toy", features=features, config={"a": 1},
                           shard_size=10, unhashed=("seconds",)) as writer:
            for i in range(12):
                writer.add({**make_row(i), "seconds": seconds * (i + 1)}, i + 1)
            return writer.finish(12, {})

    fast, slow = timed(tmp_path / "fast", 0.5), timed(tmp_path / "slow", 9.0)
    assert fast["unhashed_columns"] == ["seconds"]
    assert fast["content_hash"] == slow["content_hash"]
    assert fast["shards"][0]["sha256"] != slow["shards"][0]["sha256"]  # the bytes differ
    assert verify(tmp_path / "slow") == []
    assert [r["seconds"] for r in iter_rows(tmp_path / "slow", columns=["seconds"])][:2] == [9, 18]
    # without the seconds the rows are the plain rows; any hashed column still counts
    assert write(tmp_path / "plain", n=12)["content_hash"] == fast["content_hash"]
    assert write(tmp_path / "more", n=13)["content_hash"] != fast["content_hash"]


def test_a_full_disk_is_one_line_and_leaves_no_half_written_file(tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    reference = write(tmp_path / "ref")
    out = tmp_path / "full"
    real = pq.ParquetWriter.write_table
    calls = {"n": 0}

    def fill_up(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second shard's first row group
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fill_up)
    with pytest.raises(LdmdataError, match="No space left on device") as caught:
        write(out)
    assert "\n" not in str(caught.value) and "resume" in str(caught.value)
    names = sorted(p.name for p in (out / "data").iterdir())
    assert names == ["train-00000.parquet"]  # the committed shard, no temp file beside it
    assert not (out / "manifest.json").exists()
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real)
    assert write(out)["content_hash"] == reference["content_hash"]


SLOW_WRITER = """
import sys, time
sys.path[:0] = {paths!r}
from test_dataset import FEATURES, make_row
from ldmdata.dataset import ShardedWriter
with ShardedWriter(sys.argv[1], kind="toy", features=FEATURES, config={{"a": 1}},
                   shard_size=10) as writer:
    if writer.complete_manifest is None:
        for i in range(writer.cursor, 25):
            writer.add(make_row(i), i + 1)
            time.sleep(float(sys.argv[2]))
        writer.finish(25, {{"task": "toy"}})
"""


def test_sigterm_ends_the_write_keeps_finished_shards_and_resumes(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    reference = write(tmp_path / "ref")
    script = tmp_path / "slow.py"
    here = str(Path(__file__).parent)
    script.write_text(SLOW_WRITER.format(paths=[here, *sys.path]))
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, str(script), str(out), "0.2"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".partial" / "shard-00000.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)  # ends within seconds
    assert proc.returncode != 0
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000.parquet"]
    assert not (out / "manifest.json").exists()
    assert not list((out / "data").glob(".*.tmp"))
    subprocess.run([sys.executable, str(script), str(out), "0"], check=True)
    assert read_manifest(out)["content_hash"] == reference["content_hash"]
