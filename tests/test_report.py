"""``ldmdata report``: the study's tables, image grids, DVC plots data, and their provenance."""

import base64
import json

import pytest
import typer
from dvc.render.converter.vega import get_datapoints
from typer.testing import CliRunner

from eval_data import FAST, make_world, one_thread
from ldmdata.cli.report import report_command
from ldmdata.edit import EditOptions, edit
from ldmdata.errors import LdmdataError
from ldmdata.metrics import evaluate
from ldmdata.models.refs import ModelRef
from ldmdata.report import report, report_settings
from ldmdata.trace import read_provenance, trace

app = typer.Typer(pretty_exceptions_enable=False)
app.command()(report_command)
runner = CliRunner()
QUICK = {"device": "cpu", "bootstrap": 50, "set_bootstrap": 3}


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory, tiny_dir):
    """White-box, model-transfer, prompt-transfer and defended evaluations of one attack."""
    root = tmp_path_factory.mktemp("report_project")
    (root / "dvc.yaml").write_text("stages: {}\n")
    clip = ModelRef("clip", str(tiny_dir / "clip"))
    cpu = EditOptions(batch_size=4, device="cpu")
    with one_thread():
        w = make_world(root / "data", tiny_dir, n=2)
        runs = {
            "default": (w["adv_edits"], w["clean_edits"]),
            "p0": (edit(w["dataset"], root / "data/p0", images_dir=w["adversarial"],
                        overrides=FAST, tiny_dir=tiny_dir,
                        options=EditOptions(prompt_index=0, device="cpu")), w["clean_edits"]),
            "jpeg": (edit(w["dataset"], root / "data/jpeg", images_dir=w["adversarial"],
                          defence="jpeg:quality=30", overrides=FAST, tiny_dir=tiny_dir,
                          options=cpu), w["clean_edits"]),
        }
        edit(w["dataset"], root / "data/ip2p_clean", editor="ip2p", overrides=FAST,
             tiny_dir=tiny_dir, options=cpu)
        edit(w["dataset"], root / "data/ip2p_adv", editor="ip2p", images_dir=w["adversarial"],
             overrides=FAST, tiny_dir=tiny_dir, options=cpu)
        runs["ip2p"] = (root / "data/ip2p_adv", root / "data/ip2p_clean")
        for name, (edits, reference) in runs.items():
            edits = root / "data" / name if isinstance(edits, dict) else edits
            evaluate(edits, reference, w["dataset"], root / "metrics" / f"{name}.json",
                     root / "tables" / f"{name}.parquet", clip, QUICK, labels={"run": name})
    return root / "metrics"


def test_report_holds_the_study_tables_and_grids(metrics_dir, tmp_path):
    paths = report(metrics_dir, tmp_path / "out", {"grid_samples": 1, "thumb_size": 32})
    md = paths["markdown"].read_text()
    for heading in ("## Attack target x metric", "### img2img: attack target x metric",
                    "## Model transfer", "| vae.encoder @ tiny:sd_img2img |",
                    "## Prompt transfer", "| attacked p1 |", "## Defence x metric",
                    "| vae.encoder | jpeg(quality=30) |", "## Image grids", "## Provenance"):
        assert heading in md, heading
    assert "| none (clean edits) | tiny:sd_img2img | - | - | - |" in md
    assert md.count("![source](images/") == 1
    images = sorted(p.name for p in (tmp_path / "out" / "images").glob("*.png"))
    assert len(images) == 4 and images[0].endswith("-0-adversarial.png")
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 4
    first = html.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(first).startswith(b"\x89PNG")


def test_plots_data_is_what_dvc_plots_reads(metrics_dir, tmp_path):
    paths = report(metrics_dir, tmp_path / "out")
    content = json.loads(paths["attack_targets"].read_text())
    assert get_datapoints(content) == content["data"]
    (row,) = content["data"]
    assert row["name"] == "img2img/vae.encoder" and 0 < row["ssim"] <= 1
    defences = json.loads(paths["defences"].read_text())
    assert get_datapoints(defences) == defences["data"]
    assert [r["defence"] for r in defences["data"]] == ["none", "jpeg(quality=30)"]


def test_every_report_file_traces_back_to_the_data(metrics_dir, tmp_path):
    paths = report(metrics_dir, metrics_dir.parent / "reports")  # inside the project
    for name in ("markdown", "html", "attack_targets"):
        prov = read_provenance(paths[name])
        assert sorted(prov["inputs"]) == sorted(
            f"metrics/{n}.json" for n in ("default", "ip2p", "jpeg", "p0"))
    outside = report(metrics_dir, tmp_path / "out")  # elsewhere: absolute paths
    assert all(path.startswith("/") for path in read_provenance(outside["html"])["inputs"])
    assert trace(outside["html"]).broken is None
    result = trace(paths["markdown"])
    assert result.broken is None
    roles = {link.role for link in result.links}
    assert {"metrics", "edits", "reference_edits", "adversarial", "dataset"} <= roles
    md = paths["markdown"].read_text()
    assert "inputs (DVC hashes)" in md and result.links[1].disk_hash in md


@pytest.mark.parametrize("given, message", [
    ({"metrics": ["psnr", "lpips"]}, "unknown lpips"),
    ({"matrix_metric": "fid"}, "matrix_metric must be a per-sample metric"),
    ({"grid_samples": -1}, "grid_samples must be an integer >= 0"),
    ({"colour": "red"}, "unknown key"),
])
def test_bad_report_params_are_one_line_errors(given, message):
    with pytest.raises(LdmdataError, match=message):
        report_settings(given)


def test_cli_reports_and_bad_input_exits_2(metrics_dir, tmp_path):
    ok = runner.invoke(app, [str(metrics_dir), "--out", str(tmp_path / "r"), "--grid-samples",
                             "0"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "r" / "report.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = runner.invoke(app, [str(empty), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
    assert bad.output.strip() == f"error: no evaluation summaries under {empty} (run ldmdata " \
                                 "evaluate)"


def test_the_stages_chain_from_a_real_attack_to_the_report(tmp_path, tiny_dir):
    """attack (the real code, 1 step) -> edit stage -> evaluate stage -> report, traced."""
    from attack_data import make_dataset
    from ldmdata.attacks import RunOptions, attack
    from ldmdata.edit.plan import edit_from_params
    from ldmdata.metrics.plan import evaluate_from_params

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    data = tmp_path / "data"
    params = {
        "models": {"profile": "tiny"},
        "attack": {"targets": ["vae.encoder"], "photoguard": []},
        "edit": {"num_inference_steps": 2, "device": "cpu",
                 "runs": {"blur": {"defence": "blur:sigma=2"}}},
        "evaluate": {"device": "cpu", "bootstrap": 20, "set_bootstrap": 2},
    }
    with one_thread():
        make_dataset(data / "datasets" / "img2img", "img2img", n=2, size=64, n_prompts=1)
        attack(data / "datasets" / "img2img", data / "attacks" / "img2img" / "vae.encoder",
               target="vae.encoder", overrides={"iterations": 1, "num_inference_steps": 2},
               tiny_dir=tiny_dir, options=RunOptions(device="cpu"))
        plan = edit_from_params("img2img", data / "datasets" / "img2img",
                                data / "attacks" / "img2img", data / "edits" / "img2img", params,
                                tiny_dir)
        assert set(plan["runs"]) == {"default", "blur"}
        summaries = evaluate_from_params(data / "edits", data / "datasets", data / "metrics",
                                         data / "per_sample", params, tiny_dir)
    assert sorted(s["labels"]["run"] for s in summaries) == ["blur", "default"]
    assert (data / "metrics" / "img2img" / "blur" / "vae.encoder.json").is_file()
    assert (data / "per_sample" / "img2img" / "default" / "vae.encoder.parquet").is_file()
    paths = report(data / "metrics", tmp_path / "reports", {"grid_samples": 1})
    assert "| vae.encoder | blur(sigma=2) |" in paths["markdown"].read_text()
    result = trace(paths["html"])
    assert result.broken is None
    assert [link.path for link in result.links if link.role == "dataset"] == [
        "data/datasets/img2img"]
