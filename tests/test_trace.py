"""``ldmdata trace``: a metrics file back to its source, checked against disk and dvc.lock."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from helpers.cli import CliRunner, command
from helpers.eval_data import make_world, one_thread
from ldmdata.errors import LdmdataError
from ldmdata.metrics import evaluate
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import dvc_hash, portable_path, read_provenance
from ldmdata.trace import trace

app = command("trace")
runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_dir):
    """A DVC-style project: data, edits, a metrics file and a dvc.lock that matches them."""
    root = tmp_path_factory.mktemp("trace_project")
    (root / "dvc.yaml").write_text("stages: {}\n")
    with one_thread():
        world = make_world(root / "data", tiny_dir, n=2)
        evaluate(world["adv_edits"], world["clean_edits"], world["dataset"],
                 root / "metrics" / "m.json", root / "metrics" / "t.parquet",
                 ModelRef("clip", str(tiny_dir / "clip")),
                 {"device": "cpu", "bootstrap": 10, "set_bootstrap": 2})
    write_lock(root)
    return root


def write_lock(root):
    """dvc.lock as `dvc repro` would leave it for these outputs."""
    md5 = {name: dvc_hash(root / name) for name in
           ("data/dataset", "data/adversarial", "data/clean_edits", "data/adv_edits", "metrics")}
    lock = {"schema": "2.0", "stages": {
        "build": {"cmd": "build", "outs": [{"path": "data/dataset", "md5": md5["data/dataset"]}]},
        "attack": {"cmd": "attack",
                   "deps": [{"path": "data/dataset", "md5": md5["data/dataset"]}],
                   "outs": [{"path": "data/adversarial", "md5": md5["data/adversarial"]}]},
        "edit": {"cmd": "edit", "outs": [
            {"path": "data/clean_edits", "md5": md5["data/clean_edits"]},
            {"path": "data/adv_edits", "md5": md5["data/adv_edits"]}]},
        "evaluate": {"cmd": "evaluate", "outs": [{"path": "metrics", "md5": md5["metrics"]}]},
    }}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_an_intact_chain_walks_back_to_the_source(project):
    result = trace(project / "metrics" / "m.json")
    assert result.broken is None
    assert [(link.role, link.path) for link in result.links] == [
        ("file", "metrics/m.json"), ("edits", "data/adv_edits"),
        ("adversarial", "data/adversarial"), ("dataset", "data/dataset"),
        ("reference_edits", "data/clean_edits")]
    assert result.links[0].lock_stages == ["evaluate (metrics)"]
    assert result.links[2].lock_stages == ["attack"]
    assert result.links[3].disk_hash == dvc_hash(project / "data" / "dataset")
    assert result.lines()[-1].startswith("chain intact: 5 links")
    table = trace(project / "metrics" / "t.parquet")
    assert table.broken is None and len(table.links) == 5
    ok = runner.invoke(app, [str(project / "metrics" / "m.json")])
    assert ok.exit_code == 0 and "chain intact" in ok.output


def test_a_hand_edited_shard_is_the_broken_link(project):
    shard = project / "data" / "dataset" / "data" / "train-00000.parquet"
    original = shard.read_bytes()
    table = pq.read_table(shard)
    captions = table.column("caption").to_pylist()
    captions[0] += " (edited by hand)"
    pq.write_table(table.set_column(table.schema.get_field_index("caption"), "caption",
                                    pa.array(captions)), shard)
    try:
        result = trace(project / "metrics" / "m.json")
        broken = result.broken
        assert (broken.role, broken.path) == ("dataset", "data/dataset")
        assert broken.problems[0] == "data/train-00000.parquet: sha256 differs from the manifest"
        text = "\n".join(broken.problems)
        assert "dvc.lock (stage build) records" in text
        assert "dvc.lock (stage attack) ran on version" in text
        assert "recorded as" in text and "edits data/adv_edits" in text
        assert all(link.ok for link in result.links if link is not broken)
        cli = runner.invoke(app, [str(project / "metrics" / "m.json")])
        assert cli.exit_code == 1
        assert "broken link: dataset data/dataset: data/train-00000.parquet: sha256" in cli.output
    finally:
        shard.write_bytes(original)
    assert trace(project / "metrics" / "m.json").broken is None


def test_a_stale_dvc_lock_is_the_broken_link(project):
    lock_file = project / "dvc.lock"
    original = lock_file.read_text()
    lock = yaml.safe_load(original)
    lock["stages"]["attack"]["outs"][0]["md5"] = "0" * 32 + ".dir"
    lock_file.write_text(yaml.safe_dump(lock))
    try:
        broken = trace(project / "metrics" / "m.json").broken
        assert (broken.role, broken.path) == ("adversarial", "data/adversarial")
        assert broken.problems == [
            f"dvc.lock (stage attack) records {'0' * 32}.dir but the files hash to "
            f"{dvc_hash(project / 'data' / 'adversarial')}: dvc.lock is stale or the files "
            "were changed outside DVC"]
        lock["stages"]["attack"]["outs"][0]["md5"] = dvc_hash(project / "data" / "adversarial")
        lock["stages"]["evaluate"]["outs"][0]["md5"] = "1" * 32 + ".dir"
        lock_file.write_text(yaml.safe_dump(lock))
        broken = trace(project / "metrics" / "m.json").broken
        assert broken.role == "file" and "for metrics, which holds this path" in broken.problems[0]
    finally:
        lock_file.write_text(original)


def test_a_missing_input_and_a_file_without_provenance(project, tmp_path):
    moved = project / "data" / "clean_edits"
    moved.rename(project / "data" / "moved")
    try:
        broken = trace(project / "metrics" / "m.json").broken
        assert (broken.role, broken.problems) == ("reference_edits", ["missing on disk"])
    finally:
        (project / "data" / "moved").rename(moved)
    plain = tmp_path / "plain.json"
    plain.write_text('{"psnr": 3}')
    with pytest.raises(LdmdataError, match="carries no ldmdata provenance block"):
        read_provenance(plain)
    cli = runner.invoke(app, [str(plain)])
    assert cli.exit_code == 2 and cli.output.startswith("error: ")
    assert runner.invoke(app, [str(tmp_path / "nope.json")]).exit_code == 2


def test_paths_are_recorded_relative_to_the_project(project, tmp_path):
    assert portable_path(project / "data" / "dataset") == "data/dataset"
    assert portable_path(tmp_path / "x") == (tmp_path / "x").resolve().as_posix()


@pytest.mark.parametrize("name", ["edit", "defend", "evaluate", "trace", "report"])
def test_every_command_has_help(name):
    result = runner.invoke(command(name), ["--help"])
    assert result.exit_code == 0 and "Usage" in result.output
