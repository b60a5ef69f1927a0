"""The pipeline under DVC in a temp git repo: build -> attack -> edit -> evaluate -> report,
no-op repro, per-stage params, hashes, metrics, plots, experiments and trace."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ldmdata.provenance import dvc_hash

pytestmark = pytest.mark.slow  # end to end: minutes on a 2-core CPU

REPO = Path(__file__).resolve().parents[1]


def completed(cwd, *cmd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd}: {result.stdout}\n{result.stderr}"
    return result


def run(cwd, *cmd):
    result = completed(cwd, *cmd)
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
    # the default pipeline, smaller: two bim targets, one PhotoGuard attack and one protection
    # per task, and DiffusionGuard on inpainting
    params["attack"].update(targets=["vae.encoder", "unet.cross_attn"],
                            photoguard=["photoguard-encoder"],
                            protections=["sds-minus"], inpaint_protections=["diffusionguard"],
                            budgets=["sds-minus-eps0.02"], sr=["unet.resnet"],
                            bim={"iterations": 2, "num_inference_steps": 2},
                            **{"photoguard-encoder": {"iterations": 3},
                               "sds-minus": {"iterations": 2},
                               "diffusionguard": {"iterations": 2}})
    sd = ["img2img", "inpaint"]
    grid = ["vae.encoder", "sds-minus", "sds-minus-eps0.02"]
    params["edit"].update(num_inference_steps=2, runs={
        "ip2p": {"editor": "ip2p", "attacks": ["vae.encoder"], "tasks": sd},
        "prompt1": {"prompt_index": 1, "attacks": ["vae.encoder"], "tasks": sd},
        "jpeg75": {"defence": "jpeg:quality=75", "attacks": grid, "tasks": sd},
        "diffpure": {"defence": "diffpure:num_inference_steps=4,strength=0.5", "attacks": grid,
                     "tasks": sd},
    })
    params["evaluate"].update(bootstrap=200, set_bootstrap=10)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q")
    run(root, "git", "config", "user.email", "t@example.com")
    run(root, "git", "config", "user.name", "t")
    run(root, "dvc", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "pipeline")
    return root


STAGES = ["models_tiny", "build_inpaint", "build_img2img", "build_sr"] + [
    f"{kind}@{task}-{name}" for task in ("img2img", "inpaint")
    for kind, name in (("attack", "vae.encoder"), ("attack", "unet.cross_attn"),
                       ("photoguard", "photoguard-encoder"), ("protect", "sds-minus"))
] + [f"budget@{task}-sds-minus-eps0.02" for task in ("img2img", "inpaint")] + [
    "protect_inpaint@inpaint-diffusionguard", "attack_sr@unet.resnet", "edit@img2img",
    "edit@inpaint", "edit@sr", "evaluate", "report"]


def test_repro_runs_the_whole_pipeline_then_nothing(project):
    first = run(project, "dvc", "repro")
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first
    assert "requires_safety_checker" not in first  # no diffusers warning per upscaler load
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(STAGES)
    for stage in STAGES[1:-2]:  # builds, attacks, edits: the lock's hash is the files' hash
        out = lock["stages"][stage]["outs"][0]
        assert out["md5"] == dvc_hash(project / out["path"])
    attack = json.loads(
        (project / "data/attacks/inpaint/unet.cross_attn/manifest.json").read_text())
    assert attack["input"]["dvc_hash"] == lock["stages"]["build_inpaint"]["outs"][0]["md5"]
    assert attack["n"] == 2 and attack["attack"]["params"]["iterations"] == 2
    budget = json.loads(
        (project / "data/attacks/img2img/sds-minus-eps0.02/manifest.json").read_text())
    assert budget["attack"]["method"] == "sds-minus"
    assert budget["attack"]["params"]["eps"] == 0.02
    sr = json.loads((project / "data/metrics/sr/default/unet.resnet.json").read_text())
    assert {"psnr", "psnr_hr", "psnr_hr_reference"} <= set(sr["metrics"])
    report = (project / "reports/report.md").read_text()
    assert "Worst case over purifiers" in report and "sds-minus" in report

    second = run(project, "dvc", "repro")
    assert "Running stage" not in second


def test_a_code_change_makes_the_stages_that_import_it_stale(project):
    """A comment edited in the CLIP scorer: evaluate (and the builders, which rank prompts with
    CLIP) become stale; the attacks and edits, which never import it, do not."""
    def stale():
        return set(json.loads(completed(project, "dvc", "status", "--json").stdout))

    clip = project / "toolkit/ldmdata/models/clip.py"
    text = clip.read_text()
    before = stale()
    clip.write_text(text + "# a comment edited after the repro\n")
    try:
        changed = stale() - before
    finally:
        clip.write_text(text)
    assert "evaluate" not in before
    assert {"evaluate", "build_inpaint", "build_img2img", "build_sr"} <= changed
    assert not [name for name in changed if name.startswith(("attack@", "photoguard@", "edit@"))]
    assert stale() == before


def test_metrics_plots_report_and_trace(project):
    shown = json.loads(run(project, "dvc", "metrics", "show", "--json"))
    files = next(iter(shown.values()))["data"]
    summary = files["data/metrics/img2img/default/vae.encoder.json"]["data"]
    assert 0 < summary["metrics"]["ssim"]["mean"] <= 1
    assert summary["metrics"]["ssim"]["ci_low"] <= summary["metrics"]["ssim"]["ci_high"]
    assert summary["provenance"]["inputs"]["adversarial"]["path"].endswith(
        "data/attacks/img2img/vae.encoder")
    assert "data/metrics/inpaint/jpeg75/vae.encoder.json" in files

    run(project, "dvc", "plots", "show", "-o", "plots_html")
    page = (project / "plots_html" / "index.html").read_text()
    for plot in ("ssim", "psnr", "clip_score", "fid"):
        assert f'"{plot}"' in page
    assert "img2img/vae.encoder" in page

    report = (project / "reports/report.md").read_text()
    for row in ("vae.encoder", "unet.cross_attn", "photoguard-encoder", "sds-minus",
                "diffusionguard", "jpeg(quality=75)"):
        assert row in report
    assert "Model transfer" in report and "Prompt transfer" in report

    traced = run(project, "ldmdata", "trace", "data/metrics/inpaint/default/unet.cross_attn.json")
    assert "attack@inpaint-unet.cross_attn" in traced and "build_inpaint" in traced


def test_an_evaluate_param_reruns_only_evaluate_and_report(project):
    out = run(project, "dvc", "exp", "run", "-S", "evaluate.bootstrap=300")
    ran = {stage for stage in STAGES if f"Running stage '{stage}'" in out}
    assert ran == {"evaluate", "report"}
    summary = json.loads(
        (project / "data/metrics/img2img/default/vae.encoder.json").read_text())
    assert summary["provenance"]["params"]["evaluate"]["bootstrap"] == 300


def test_an_sr_param_reruns_only_the_sr_leg(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["build_sr"]["degradation"] = "bicubic"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = run(project, "dvc", "repro")
    sr_leg = {"build_sr", "attack_sr@unet.resnet", "edit@sr", "evaluate", "report"}
    for stage in STAGES:
        assert (f"Running stage '{stage}'" in third) == (stage in sr_leg), stage
    run(project, "ldmdata", "verify", "data/datasets/sr")
