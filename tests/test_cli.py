"""The ldmdata command: help, builds, verify, bad options, kill-and-resume, concurrent builds."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from ldmdata.cli.app import app

runner = CliRunner()
FAST = ["--shard-size", "3", "--batch-size", "3"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "command",
    [[], ["build"], ["build", "inpaint"], ["build", "img2img"], ["build", "sr"], ["models"],
     ["models", "tiny"], ["verify"], ["publish"], ["attack"], ["defend"], ["edit"],
     ["evaluate"], ["trace"], ["report"]],
)
def test_every_command_has_help(command):
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_build_verify_and_tamper(tmp_path, tiny_dir):
    out = tmp_path / "ds"
    result = cli("build", "img2img", "--n", 4, "--out", out, "--tiny-dir", tiny_dir, *FAST)
    assert result.exit_code == 0, result.output
    assert "4 rows in 2 shard(s)" in result.output
    ok = cli("verify", out)
    assert ok.exit_code == 0 and "intact" in ok.output
    again = cli("build", "img2img", "--n", 4, "--out", out, "--tiny-dir", tiny_dir, *FAST)
    assert again.exit_code == 0  # same settings: found up to date
    shard = out / "data" / "train-00001.parquet"
    shard.write_bytes(shard.read_bytes().replace(b"PNG", b"PNh", 1))
    bad = cli("verify", out)
    assert bad.exit_code == 1 and "data/train-00001.parquet" in bad.output


def test_sr_options_reach_the_build(tmp_path, tiny_dir):
    out = tmp_path / "sr"
    result = cli("build", "sr", "--n", 2, "--out", out, "--tiny-dir", tiny_dir, "--scale", 2,
                 "--degradation", "realesrgan", *FAST)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["scale"] == 2 and manifest["params"]["degradation"] == "realesrgan"


def test_params_file_and_option_override(tmp_path, tiny_dir):
    params = tmp_path / "params.yaml"
    params.write_text("build_img2img:\n  n: 3\n  seed: 7\n  size: 64\nsource:\n  spec: synthetic\n")
    out = tmp_path / "ds"
    result = cli("build", "img2img", "--params", params, "--seed", 8, "--out", out,
                 "--tiny-dir", tiny_dir, *FAST)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n"] == 3
    assert manifest["params"]["seed"] == 8 and manifest["params"]["size"] == 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "n must be a positive integer"),
        (["--n", "-3"], "n must be a positive integer"),
        (["--n", "2", "--source", "ftp:somewhere"], "unknown source"),
        (["--n", "2", "--source", "folder:/no/such/dir"], "/no/such/dir"),
        (["--n", "2", "--source", "coco:/no/such/captions.json"], "/no/such/captions.json"),
        (["--n", "2", "--profile", "real"], "cannot load"),
        (["--n", "2", "--profile", "huge"], "unknown profile"),
        (["--n", "2", "--params", "/no/such/params.yaml"], "params file not found"),
    ],
)
def test_bad_options_one_line_exit_2_nothing_written(tmp_path, tiny_dir, args, message):
    out = tmp_path / "never"
    result = cli("build", "inpaint", "--out", out, "--tiny-dir", tiny_dir, *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.exists()


def test_busy_folder_is_refused(tmp_path, tiny_dir):
    out = tmp_path / "ds"
    out.mkdir()
    lock = FileLock(str(out / ".lock"))
    with lock:
        result = cli("build", "img2img", "--n", 2, "--out", out, "--tiny-dir", tiny_dir)
    assert result.exit_code == 2 and "another process" in result.output


def _run_build(out, tiny_dir, n):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "ldmdata.cli", "build", "inpaint", "--n", str(n), "--out",
           str(out), "--tiny-dir", str(tiny_dir), "--shard-size", "4", "--batch-size", "4"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_to_the_same_hash(tmp_path, tiny_dir):
    ref = _run_build(tmp_path / "ref", tiny_dir, 16)
    assert ref.wait(timeout=300) == 0, ref.stdout.read().decode()
    out = tmp_path / "killed"
    proc = _run_build(out, tiny_dir, 16)
    record = out / ".partial" / "shard-00001.json"
    deadline = time.time() + 300
    while not record.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists(), "build finished before it could be killed"
    rerun = _run_build(out, tiny_dir, 16)
    assert rerun.wait(timeout=300) == 0, rerun.stdout.read().decode()
    done = json.loads((out / "manifest.json").read_text())
    expected = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert done["content_hash"] == expected["content_hash"]
    assert done["n"] == 16 and [s["sha256"] for s in done["shards"]] == [
        s["sha256"] for s in expected["shards"]]
