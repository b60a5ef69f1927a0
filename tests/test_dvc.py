"""The pipeline under DVC in a temp git repo: repro, no-op repro, per-stage params, hashes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ldmdata.provenance import dvc_hash

REPO = Path(__file__).resolve().parents[1]


def run(cwd, *cmd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd}: {result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A fresh git+DVC repo holding the project's pipeline files, with small builds."""
    root = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", "params.yaml", "stages", "toolkit"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    for task in ("inpaint", "img2img", "sr"):
        params[f"build_{task}"].update(n=6, size=64, shard_size=4)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q")
    run(root, "git", "config", "user.email", "t@example.com")
    run(root, "git", "config", "user.name", "t")
    run(root, "dvc", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "pipeline")
    return root


def test_repro_then_nothing_to_do_then_only_sr(project):
    first = run(project, "dvc", "repro")
    for stage in ("models_tiny", "build_inpaint", "build_img2img", "build_sr"):
        assert f"Running stage '{stage}'" in first
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    for task in ("inpaint", "img2img", "sr"):
        out = lock["stages"][f"build_{task}"]["outs"][0]
        assert out["md5"] == dvc_hash(project / out["path"])

    second = run(project, "dvc", "repro")
    assert "Running stage" not in second

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["build_sr"]["degradation"] = "bicubic"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = run(project, "dvc", "repro")
    assert "Running stage 'build_sr'" in third
    for stage in ("models_tiny", "build_inpaint", "build_img2img"):
        assert f"Running stage '{stage}'" not in third
    run(project, "ldmdata", "verify", "data/datasets/sr")
