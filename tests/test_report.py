"""``ldmdata report``: the study's tables, image grids, DVC plots data, and their provenance."""

import base64
import json

import pytest
from dvc.render.converter.vega import get_datapoints

from helpers.cli import CliRunner, command
from helpers.eval_data import FAST, make_world, one_thread
from ldmdata.edit import EditOptions, edit
from ldmdata.errors import LdmdataError
from ldmdata.metrics import evaluate
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import read_provenance
from ldmdata.report import report, report_settings
from ldmdata.trace import trace

app = command("report")
runner = CliRunner()
QUICK = {"device": "cpu", "bootstrap": 50, "set_bootstrap": 3}
CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); never `playwright install`
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


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
    ({"bootstrap": 1.5}, "bootstrap must be an integer >= 0"),
    ({"thumb_size": 8}, "thumb_size must be an integer >= 16"),
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
    from helpers.attack_data import make_dataset
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


def _evaluation(tmp_path, ref, defence, values, eps=0.1):
    """A summary with a per-sample table of ``{(sample_id, prompt_index): ssim}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ldmdata.report.tables import Evaluation

    table = tmp_path / f"{ref}.parquet"
    pq.write_table(pa.Table.from_pylist([{"sample_id": s, "prompt_index": k, "ssim": v}
                                         for (s, k), v in values.items()]), table)
    labels = {"task": "img2img", "origin": "adversarial", "attack_method": "bim",
              "attack_target": "vae.encoder", "attack_eps": eps, "defence": defence,
              "model_transfer": False, "prompt_transfer": False}
    mean = sum(values.values()) / len(values)
    return Evaluation(ref, tmp_path / f"{ref}.json", labels, {"ssim": {"mean": mean}},
                      {"inputs": {}}, table)


def test_worst_case_takes_the_strongest_purifier_per_sample(tmp_path):
    from ldmdata.report.worst_case import cluster_bootstrap, heatmaps, protections

    base = _evaluation(tmp_path, "E1", None, {("a", 0): 0.5, ("a", 1): 0.4, ("b", 0): 0.3})
    jpeg = _evaluation(tmp_path, "E2", "jpeg", {("a", 0): 0.9, ("a", 1): 0.6, ("b", 0): 0.2})
    blur = _evaluation(tmp_path, "E3", "blur", {("a", 0): 0.7, ("a", 1): 0.8, ("b", 0): 0.4})
    other = _evaluation(tmp_path, "E4", None, {("a", 0): 0.6, ("b", 0): 0.5}, eps=0.2)
    found = protections([base, jpeg, blur, other], "ssim", n_boot=200, seed=1)
    assert [(p.eps, p.base.ref) for p in found] == [(0.1, "E1"), (0.2, "E4")]
    p = found[0]
    assert p.worst[0] == pytest.approx((0.9 + 0.8 + 0.4) / 3)  # per-sample maxima, then mean
    assert p.unpurified[0] == pytest.approx(0.4)
    assert dict(p.strongest) == {"jpeg": 1, "blur": 2}
    assert found[1].worst == (None, None, None)
    # source image a (2 prompts, mean 0.85) and b (0.4): resampling whole images, every
    # replicate's mean lies between the two images' means, and both extremes occur
    mean, low, high = cluster_bootstrap({("a", 0): 0.9, ("a", 1): 0.8, ("b", 0): 0.4}, 2000, 0,
                                        0.95)
    assert low == pytest.approx(0.4) and high == pytest.approx(0.85)
    assert cluster_bootstrap({("a", 0): 0.9}, 100, 0, 0.95) == (0.9, None, None)
    (heat,) = heatmaps(found, "ssim")
    assert heat.columns == ["none", "blur", "jpeg", "worst case"]
    assert heat.cells[("vae.encoder (bim) @ 0.1", "jpeg")] == (pytest.approx(17 / 30), "E2")


def test_report_shows_the_worst_case_heatmap_and_budget_curve(metrics_dir, tmp_path):
    labels = json.loads((metrics_dir / "jpeg.json").read_text())["labels"]
    assert labels["attack_eps"] == 0.1  # from the adversarial set's attack.params.eps
    paths = report(metrics_dir, tmp_path / "out", {"grid_samples": 0, "bootstrap": 50})
    md = paths["markdown"].read_text()
    assert "### img2img: worst case over purifiers (SSIM)" in md
    assert "| vae.encoder (bim) | 0.1 |" in md and "| jpeg(quality=30) | jpeg(quality=30) (" in md
    (none,) = [line for line in md.splitlines() if line.startswith("| none (clean edits) |")]
    assert none.endswith("| ref of E1 |")  # the reference edits of E1, not E1 itself
    assert "> **Warning:** These numbers come from the tiny random-weight test models" in md
    for chart in ("heatmap-img2img.svg", "budget-img2img.svg", "attack-img2img-ssim.svg"):
        assert f"](images/{chart})" in md
        assert (tmp_path / "out" / "images" / chart).read_text().startswith("<svg")
    html = paths["html"].read_text()
    assert html.count("<svg class='chart'") == md.count(".svg)")
    assert "chosen from the data (not from 0)" in html and "<script" not in html
    worst = json.loads(paths["worst_case"].read_text())
    assert get_datapoints(worst) == worst["data"]
    (row,) = worst["data"]
    assert row["attack_eps"] == 0.1 and row["evals"] == ["E1", "E3"]
    purifiers = json.loads(paths["purifiers"].read_text())["data"]
    assert [r["purifier"] for r in purifiers] == ["none", "jpeg(quality=30)", "worst case"]


@pytest.mark.slow
def test_the_report_page_loads_offline_in_a_browser(metrics_dir, tmp_path):
    """Chromium opens report.html: every image decodes, tables and charts render, no request."""
    from pathlib import Path

    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    paths = report(metrics_dir, tmp_path / "out", {"grid_samples": 2, "bootstrap": 20})
    url = paths["html"].resolve().as_uri()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url, wait_until="load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.complete, e.naturalWidth])")
        tables = page.locator("table").count()
        charts = page.eval_on_selector_all(
            "svg.chart", "els => els.map(e => e.getBoundingClientRect().width)")
        banner = page.locator(".banner").inner_text()
        browser.close()
    assert requests == [url]  # the page itself, nothing from the network
    assert len(images) == 8 and all(done and width > 0 for done, width in images)
    assert tables >= 6 and len(charts) >= 3 and all(width > 0 for width in charts)
    assert "tiny random-weight test models" in banner


def test_inpainting_grids_show_the_mask(tmp_path, tiny_dir):
    import io

    import numpy as np
    from PIL import Image

    from ldmdata.dataset import iter_rows

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    with one_thread():
        w = make_world(tmp_path / "data", tiny_dir, task="inpaint", n=1)
        evaluate(w["adv_edits"], w["clean_edits"], w["dataset"], tmp_path / "metrics/i.json",
                 tmp_path / "tables/i.parquet", ModelRef("clip", str(tiny_dir / "clip")),
                 {**QUICK, "metrics": ["ssim"]})
    paths = report(tmp_path / "metrics", tmp_path / "out",
                   {"grid_samples": 1, "thumb_size": 64, "metrics": ["ssim"]})
    md = paths["markdown"].read_text()
    assert "| source | mask | adversarial | edit of clean | edit of adversarial |" in md
    (row,) = list(iter_rows(w["dataset"], columns=["mask"], decode_images=False))
    mask = np.asarray(Image.open(io.BytesIO(row["mask"]["bytes"])).convert("RGB"))
    shown = np.asarray(Image.open(tmp_path / "out" / "images" / "E1-0-mask.png"))
    assert mask.shape == (64, 64, 3) and np.array_equal(shown, mask)
