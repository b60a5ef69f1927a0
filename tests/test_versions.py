"""DVC versions: open any git revision of a dataset; the push, clone and pull round trip."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from datasets import Features, Image, List, Value
from dvc.api import DVCFileSystem
from dvc.repo import Repo
from PIL import Image as PILImage

from ldmdata.dataset import ShardedWriter, read_manifest, verify
from ldmdata.dataset.png import encode_png
from ldmdata.errors import LdmdataError
from ldmdata.provenance import dvc_hash
from ldmdata.publish.versions import open_dataset

BIN = Path(sys.executable).parent
FEATURES = Features({"id": Value("string"), "image": Image(), "prompts": List(Value("string"))})


def write_dataset(folder: Path, n: int, version: int) -> dict:
    """An img2img-shaped dataset whose rows differ between versions."""
    with ShardedWriter(folder, kind="img2img", features=FEATURES, config={"n": n, "v": version},
                       shard_size=3, overwrite=True) as writer:
        for i in range(n):
            image = PILImage.new("RGB", (16, 12), (i * 20 % 256, version * 60, 100))
            writer.add({"id": f"v{version}-{i}", "image": encode_png(image),
                        "prompts": [f"p{i}"]}, i + 1)
        return writer.finish(n, {"task": "img2img"})


def sh(cwd: Path, *args: str) -> str:
    """Run a command (git, or dvc / ldmdata from this venv); its stdout, failing loudly."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def git_init(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    sh(root, "git", "init", "-q")
    sh(root, "git", "config", "user.email", "test@example.com")
    sh(root, "git", "config", "user.name", "test")
    sh(root, "git", "config", "commit.gpgsign", "false")


def commit(root: Path, message: str, tag: str | None = None) -> None:
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", message)
    if tag:
        sh(root, "git", "tag", tag)


@pytest.fixture
def versioned(tmp_path):
    """A git + DVC repo with data/ds tracked by `dvc add`: tag v1 (5 rows), tag v2 (8 rows)."""
    root = tmp_path / "proj"
    git_init(root)
    Repo.init(str(root)).close()
    ds = root / "data" / "ds"
    manifests = {}
    for version, n in ((1, 5), (2, 8)):
        manifests[version] = write_dataset(ds, n, version)
        with Repo(str(root)) as repo:
            repo.add(str(ds))
        commit(root, f"dataset v{version}", tag=f"v{version}")
    return root, manifests


def test_open_dataset_at_each_revision(versioned, tmp_path):
    root, manifests = versioned
    cache = tmp_path / "shards"
    v1 = open_dataset("data/ds", rev="v1", repo=root, cache_dir=cache)
    v2 = open_dataset("data/ds", rev="v2", repo=root, cache_dir=cache)
    assert v1.num_rows == 5 and v2.num_rows == 8
    assert v1["id"] == [f"v1-{i}" for i in range(5)]  # the manifest's row order
    assert v2["id"] == [f"v2-{i}" for i in range(8)]
    assert v1.features == FEATURES and isinstance(v1[0]["image"], PILImage.Image)
    assert v1[0]["image"].getpixel((0, 0)) == (0, 60, 100)
    assert open_dataset("data/ds", repo=root, cache_dir=cache)["id"] == v2["id"]  # working tree
    first = sh(root, "git", "rev-list", "-n", "1", "v1").strip()
    assert open_dataset("data/ds", rev=first, repo=root, cache_dir=cache).num_rows == 5
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{s['sha256']}.parquet" for m in manifests.values() for s in m["shards"])


def test_path_is_relative_to_the_current_folder_without_repo(versioned, tmp_path, monkeypatch):
    root, _ = versioned
    monkeypatch.chdir(root / "data")
    assert open_dataset("ds", rev="v1", cache_dir=tmp_path / "shards").num_rows == 5
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LdmdataError, match="not inside a DVC repository"):
        open_dataset("proj/data/ds", rev="v1", cache_dir=tmp_path / "shards")


def test_cached_shards_are_not_fetched_again(versioned, tmp_path, monkeypatch):
    root, _ = versioned
    cache = tmp_path / "shards"
    open_dataset("data/ds", rev="v1", repo=root, cache_dir=cache)

    def no_fetch(*args, **kwargs):
        raise AssertionError("fetched a cached shard")

    monkeypatch.setattr(DVCFileSystem, "get_file", no_fetch)
    assert open_dataset("data/ds", rev="v1", repo=root, cache_dir=cache).num_rows == 5


@pytest.mark.parametrize("path, rev, message", [
    ("data/ds", "v9", "revision 'v9' does not exist"),
    ("data/nothing", "v1", "data/nothing@v1: no ldmdata dataset there"),
    ("data", "v2", "data@v2: no ldmdata dataset there"),
])
def test_bad_revision_or_path_is_one_clear_error(versioned, tmp_path, path, rev, message):
    root, _ = versioned
    with pytest.raises(LdmdataError, match=message) as err:
        open_dataset(path, rev=rev, repo=root, cache_dir=tmp_path / "shards")
    assert "\n" not in str(err.value)


def _cache_object(root: Path, shard: Path) -> Path:
    """The file in .dvc/cache that holds ``shard``'s bytes (by its md5)."""
    md5 = dvc_hash(shard)
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def test_damaged_or_missing_data_is_refused(versioned, tmp_path):
    root, _ = versioned
    fs = DVCFileSystem(str(root), rev="v1")
    fs.get_file("data/ds/data/train-00001.parquet", str(tmp_path / "v1-shard1"))
    damaged = _cache_object(root, tmp_path / "v1-shard1")
    damaged.chmod(0o644)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(LdmdataError, match="train-00001.parquet: sha256 differs"):
        open_dataset("data/ds", rev="v1", repo=root, cache_dir=tmp_path / "a")
    damaged.unlink()  # gone from the cache, and there is no DVC remote to fetch it from
    with pytest.raises(LdmdataError, match="cannot fetch data/ds@v1/data/train-00001.parquet"):
        open_dataset("data/ds", rev="v1", repo=root, cache_dir=tmp_path / "b")
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]

    fs.get_file("data/ds/manifest.json", str(tmp_path / "v1-manifest"))
    _cache_object(root, tmp_path / "v1-manifest").unlink()
    with pytest.raises(LdmdataError, match="cannot fetch data/ds@v1/manifest.json"):
        open_dataset("data/ds", rev="v1", repo=root, cache_dir=tmp_path / "c")
    shutil.rmtree(root / ".dvc" / "cache")  # not even the folder listing is left
    with pytest.raises(LdmdataError, match="cannot fetch data/ds@v1/manifest.json") as err:
        open_dataset("data/ds", rev="v1", repo=root, cache_dir=tmp_path / "c")
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_dvc_sharing_round_trip(tmp_path, tiny_dir):
    """Build with DVC, tag two versions and push each to a local remote; clone, pull, compare."""
    proj, remote, clone = tmp_path / "proj", tmp_path / "remote", tmp_path / "clone"
    git_init(proj)
    sh(proj, "dvc", "init", "-q")
    remote.mkdir()
    sh(proj, "dvc", "remote", "add", "-d", "storage", str(remote))
    commit(proj, "DVC with a local remote")  # a revision's data goes to the remote it names

    def build_version(n: int, tag: str) -> dict:
        cmd = f"ldmdata build img2img --n {n} --out data/ds --shard-size 4 --tiny-dir {tiny_dir}"
        pipeline = {"stages": {"build": {"cmd": cmd, "outs": ["data/ds"]}}}
        (proj / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
        sh(proj, "dvc", "repro")
        commit(proj, f"dataset {tag} ({n} rows)", tag=tag)
        sh(proj, "dvc", "push")
        assert locked_md5(proj) == dvc_hash(proj / "data" / "ds")  # the hash cards quote
        return read_manifest(proj / "data" / "ds")

    def locked_md5(root: Path) -> str:
        lock = yaml.safe_load((root / "dvc.lock").read_text())
        return lock["stages"]["build"]["outs"][0]["md5"]

    v1 = build_version(6, "v1")
    v2 = build_version(9, "v2")
    assert (v1["n"], v2["n"], len(v2["shards"])) == (6, 9, 3)

    sh(tmp_path, "git", "clone", "-q", str(proj), str(clone))
    assert not (clone / "data" / "ds").exists()
    sh(clone, "dvc", "pull")
    assert dvc_hash(clone / "data" / "ds") == dvc_hash(proj / "data" / "ds") == locked_md5(clone)
    assert read_manifest(clone / "data" / "ds")["content_hash"] == v2["content_hash"]
    assert verify(clone / "data" / "ds") == []
    assert "Data and pipelines are up to date" in sh(clone, "dvc", "status")
    repro = sh(clone, "dvc", "repro")
    assert "Running stage" not in repro and "up to date" in repro

    cache = tmp_path / "shards"  # v1 was never pulled into the clone: it comes from the remote
    old = open_dataset("data/ds", rev="v1", repo=clone, cache_dir=cache)
    new = open_dataset("data/ds", rev="v2", repo=clone, cache_dir=cache)
    assert (old.num_rows, new.num_rows) == (6, 9)
    assert old.features == Features.from_dict(v1["features"])
    assert new.features == Features.from_dict(v2["features"])


def test_open_dataset_is_exported_without_a_heavy_import():
    code = (
        "import sys, ldmdata.publish\n"
        "heavy = {'dvc', 'datasets', 'torch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "from ldmdata.publish.versions import open_dataset\n"
        "assert ldmdata.publish.open_dataset is open_dataset\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
