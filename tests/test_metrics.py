"""Metrics against known cases, the evaluate summary, its provenance, and bad params."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from helpers.attack_data import scene
from helpers.cli import CliRunner, command
from helpers.eval_data import FAST
from ldmdata.dataset import iter_rows
from ldmdata.edit import EditOptions, edit
from ldmdata.errors import LdmdataError
from ldmdata.metrics import cluster_mean, evaluate, evaluate_settings, ms_ssim, psnr, ssim
from ldmdata.metrics.evaluation import _fid
from ldmdata.metrics.features import ClipImageFeatures, Precomputed, as_uint8, choose_features
from ldmdata.metrics.functional import ms_ssim_betas
from ldmdata.metrics.settings import DEFAULTS
from ldmdata.models.clip import ClipScorer
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import PARQUET_KEY, dvc_hash

app = command("evaluate")
runner = CliRunner()
QUICK = {"device": "cpu", "bootstrap": 200, "set_bootstrap": 10}


def clip_ref(tiny_dir):
    return ModelRef("clip", str(tiny_dir / "clip"))


def batch(n=3, size=64, shift=0):
    images = [scene(i, size)[0] for i in range(n)]
    x = as_uint8(images).double() / 255
    return torch.roll(x, shifts=shift, dims=-1) if shift else x


def test_an_image_against_itself_and_against_a_shifted_copy():
    x = batch()
    assert psnr(x, x).tolist() == [100.0] * 3
    assert all(math.isinf(v) for v in psnr(x, x, cap=None).tolist())
    assert ssim(x, x).tolist() == pytest.approx([1.0] * 3)
    assert ms_ssim(x, x).tolist() == pytest.approx([1.0] * 3)
    shifted = batch(shift=3)
    assert all(v < 40 for v in psnr(shifted, x).tolist())
    assert all(v < 0.99 for v in ssim(shifted, x).tolist())
    assert all(v < 0.99 for v in ms_ssim(shifted, x).tolist())
    more = batch(shift=9)
    assert (psnr(more, x) < psnr(shifted, x)).all() and (ssim(more, x) < ssim(shifted, x)).all()


def test_ms_ssim_uses_the_scales_the_image_size_allows():
    assert ms_ssim_betas(256, 256) == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    small = ms_ssim_betas(64, 64)
    assert len(small) == 3 and sum(small) == pytest.approx(1.0)
    assert small[1] / small[0] == pytest.approx(0.2856 / 0.0448)
    with pytest.raises(ValueError, match="too small"):
        ms_ssim_betas(8, 8)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(0).normal(5, 1, 50).tolist() + [float("nan")]
    clusters = [i // 5 for i in range(51)]
    one, two = cluster_mean(values, clusters, 500, seed=1), cluster_mean(values, clusters, 500, 1)
    assert one == two and one["n"] == 50 and one["n_dropped"] == 1
    assert one["n_clusters"] == 10 and one["ci_unit"] == "image"
    assert one["ci_low"] < one["mean"] < one["ci_high"]
    assert cluster_mean(values, clusters, 500, seed=2)["ci_low"] != one["ci_low"]
    assert cluster_mean([], [], 10, 0)["mean"] is None


def test_clip_feature_fid_of_a_set_against_itself_is_zero(tiny_dir):
    extractor = ClipImageFeatures(ClipScorer(clip_ref(tiny_dir)))
    feats = extractor(as_uint8([scene(i, 64)[0] for i in range(6)])).double()
    assert feats.shape == (6, extractor.num_features)
    metric = FrechetInceptionDistance(feature=Precomputed(feats.shape[1]))
    assert abs(_fid(metric, feats, feats)) < 1e-6
    others = extractor(as_uint8([scene(i, 64)[0].rotate(90) for i in range(10, 16)])).double()
    shifted = _fid(metric, others, feats)
    assert shifted > 1e-3
    # the metric is reused across bootstrap draws: a reset leaves nothing of the last one
    assert abs(_fid(metric, feats, feats)) < 1e-6
    assert _fid(FrechetInceptionDistance(feature=Precomputed(feats.shape[1])), others,
                feats) == shifted


def test_evaluate_writes_summary_table_and_provenance(world, tmp_path, tiny_dir):
    summary = evaluate(world["adv_edits"], world["clean_edits"], world["dataset"],
                       tmp_path / "m.json", tmp_path / "t.parquet", clip_ref(tiny_dir), QUICK)
    m = summary["metrics"]
    assert set(m) == {"psnr", "ssim", "ms_ssim", "clip_score", "clip_score_reference", "fid",
                      "fid_reference", "is", "is_reference"}
    assert summary["protocol"] == summary["labels"]["protocol"] == "ldmdata"
    assert m["psnr"]["n"] == 6 and m["psnr"]["cap_db"] == 100.0 and m["psnr"]["mean"] < 100
    assert {v["ci_unit"] for v in m.values()} == {"image"}
    assert {v["n_clusters"] for v in m.values()} == {3}
    assert m["psnr"]["statistic"] == "mean" and m["fid"]["statistic"] == "set"
    assert m["ssim"]["ci_low"] <= m["ssim"]["mean"] <= m["ssim"]["ci_high"] < 1
    assert m["ms_ssim"]["scales"] == [3] and m["ms_ssim"]["higher_is_better"] is True
    assert m["fid"]["features"].startswith("clip (tiny:clip)") and m["fid"]["n_sources"] == 3
    assert m["fid"]["higher_is_better"] is False and m["fid"]["mean"] > 0
    assert m["fid"]["ci_low"] <= m["fid"]["ci_high"] and m["is"]["ci_low"] <= m["is"]["ci_high"]
    assert "zero-shot" in m["is"]["features"] and m["is"]["splits"] == 1
    assert summary["labels"]["attack_target"] == "vae.encoder"
    prov = summary["provenance"]
    assert prov["inputs"]["edits"]["dvc_hash"] == dvc_hash(world["adv_edits"])
    assert prov["inputs"]["reference_edits"]["dvc_hash"] == dvc_hash(world["clean_edits"])
    assert prov["inputs"]["dataset"]["dvc_hash"] == dvc_hash(world["dataset"])
    assert prov["inputs"]["adversarial"]["dvc_hash"] == dvc_hash(world["adversarial"])
    assert set(prov["models"]) == {"editor", "attack", "clip"}
    assert prov["params"]["evaluate"]["bootstrap"] == 200 and "ldmdata" in prov["code"]
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(json.dumps(summary))
    table = pq.read_table(tmp_path / "t.parquet")
    assert json.loads(table.schema.metadata[PARQUET_KEY]) == json.loads(json.dumps(prov))
    rows = table.to_pylist()
    assert len(rows) == 6 and rows[0]["id"] == "s0-a0-p0" and rows[0]["reference_id"] == "s0-p0"
    again = evaluate(world["adv_edits"], world["clean_edits"], world["dataset"],
                     tmp_path / "m2.json", tmp_path / "t2.parquet", clip_ref(tiny_dir), QUICK)
    assert again["metrics"] == summary["metrics"]


def test_edits_against_themselves_score_perfectly(world, tmp_path, tiny_dir):
    summary = evaluate(world["clean_edits"], world["clean_edits"], world["dataset"],
                       tmp_path / "m.json", tmp_path / "t.parquet", clip_ref(tiny_dir),
                       {**QUICK, "metrics": ["psnr", "ssim", "ms_ssim", "fid"]})
    m = summary["metrics"]
    assert m["psnr"]["mean"] == 100.0 and m["psnr"]["n_capped"] == 6
    assert m["ssim"]["mean"] == pytest.approx(1.0) and m["ms_ssim"]["mean"] == pytest.approx(1.0)
    assert m["fid"]["mean"] == pytest.approx(m["fid_reference"]["mean"])
    assert "clip_score" not in m and "is" not in m


def test_the_reference_must_match_the_edit_settings(world, tmp_path, tiny_dir):
    edit(world["dataset"], tmp_path / "seed1", overrides={**FAST, "seed": 1},
         tiny_dir=tiny_dir, options=EditOptions(device="cpu"))
    with pytest.raises(LdmdataError, match="reference edits were made with another params"):
        evaluate(world["adv_edits"], tmp_path / "seed1", world["dataset"], tmp_path / "m.json",
                 tmp_path / "t.parquet", clip_ref(tiny_dir), QUICK)
    edit(world["dataset"], tmp_path / "p0", overrides=FAST, tiny_dir=tiny_dir,
         options=EditOptions(prompts=[0], device="cpu"))
    with pytest.raises(LdmdataError, match="3 edit.s. have no reference edit"):
        evaluate(world["adv_edits"], tmp_path / "p0", world["dataset"], tmp_path / "m.json",
                 tmp_path / "t.parquet", clip_ref(tiny_dir), QUICK)


@pytest.mark.parametrize("given, message", [
    ({"metrics": ["psnr", "lpips"]}, "unknown lpips"),
    ({"psnr_cap": -1}, "psnr_cap must be a positive number"),
    ({"ssim_kernel": 11}, "unknown key"),
    ({"protocol": "paper"}, "protocol must be one of ldmdata, study"),
    ({"confidence": 1.5}, r"confidence must be in \(0, 1\)"),
    ({"features": "dino"}, "unknown features 'dino'"),
    ({"features": "inception"}, "features inception asked for, but"),
    ({"bootstraps": 3}, "unknown key"),
    ({"precision": "half"}, "precision must be float64 or float32"),
])
def test_bad_evaluate_params_are_one_line_errors(given, message):
    with pytest.raises(LdmdataError, match=message):
        evaluate_settings(given)


def test_auto_features_fall_back_to_clip_offline():
    assert choose_features("auto", None) == "clip"
    assert choose_features("auto", "/no/such/weights.pth") == "clip"


def test_cli_evaluates_and_bad_options_exit_2(world, tmp_path, tiny_dir):
    base = [str(world["adv_edits"]), "--reference", str(world["clean_edits"]), "--dataset",
            str(world["dataset"]), "--tiny-dir", str(tiny_dir), "--device", "cpu"]
    ok = runner.invoke(app, [*base, "--out", str(tmp_path / "m.json"), "--metrics",
                             "psnr,ssim", "--bootstrap", "50"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"{tmp_path / 'm.json'} (ldmdata protocol): psnr ")
    assert (tmp_path / "m.parquet").exists()
    for option, message in ((["--metrics", "psnr,foo"], "evaluate metrics: unknown foo"),
                            (["--protocol", "paper"], "protocol must be one of"),
                            (["--psnr-cap", "high"], "--psnr-cap takes a number of dB or none")):
        bad = runner.invoke(app, [*base, "--out", str(tmp_path / "x.json"), *option])
        assert bad.exit_code == 2
        assert bad.output.strip().startswith(f"error: {message}")
        assert len(bad.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_cli_psnr_cap_defaults_to_the_library_and_none_keeps_inf(world, tmp_path, tiny_dir):
    base = [str(world["clean_edits"]), "--reference", str(world["clean_edits"]), "--dataset",
            str(world["dataset"]), "--tiny-dir", str(tiny_dir), "--device", "cpu",
            "--metrics", "psnr", "--bootstrap", "20"]
    default = runner.invoke(app, [*base, "--out", str(tmp_path / "d.json")])
    assert default.exit_code == 0, default.output
    psnr_default = json.loads((tmp_path / "d.json").read_text())["metrics"]["psnr"]
    assert psnr_default["cap_db"] == DEFAULTS["psnr_cap"] == psnr_default["mean"]
    keep = runner.invoke(app, [*base, "--out", str(tmp_path / "k.json"), "--psnr-cap", "none"])
    assert keep.exit_code == 0, keep.output
    text = (tmp_path / "k.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    kept = json.loads(text)["metrics"]["psnr"]
    assert kept["cap_db"] is None and kept["mean"] is None and kept["ci_low"] is None
    assert kept["n_infinite"] == 6 and kept["n"] == 0
    assert kept["note"].startswith("6 infinite value(s) left out of the mean and the interval")
    rows = pq.read_table(tmp_path / "k.parquet").to_pylist()
    assert all(math.isinf(row["psnr"]) for row in rows)


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A random-init Inception-v3 saved in torch-fidelity's weights format (the real weights
    are a download): the Inception path then runs exactly as with the real file."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save({}, path)
    load = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state, strict=True: None
    try:
        torch.manual_seed(0)
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                            feature_extractor_weights_path=str(path))
    finally:
        FeatureExtractorInceptionV3.load_state_dict = load
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow  # a 2048-d FID per bootstrap draw: seconds each on a CPU
def test_inception_features_when_the_weights_are_on_disk(world, tmp_path, tiny_dir,
                                                         inception_weights):
    assert choose_features("auto", str(inception_weights)) == "inception"
    settings = {**QUICK, "set_bootstrap": 2, "metrics": ["fid", "is"], "features": "auto",
                "inception_weights": str(inception_weights)}
    summary = evaluate(world["adv_edits"], world["clean_edits"], world["dataset"],
                       tmp_path / "m.json", tmp_path / "t.parquet", clip_ref(tiny_dir), settings)
    m = summary["metrics"]
    assert m["fid"]["features"] == "inception-v3 (torch-fidelity weights) 2048-d pool"
    assert m["is"]["features"] == "inception-v3 (torch-fidelity weights) logits"
    assert math.isfinite(m["fid"]["mean"]) and m["fid"]["mean"] > 0
    assert m["fid"]["ci_low"] <= m["fid"]["ci_high"] and m["is"]["mean"] >= 1
    same = evaluate(world["clean_edits"], world["clean_edits"], world["dataset"],
                    tmp_path / "s.json", tmp_path / "s.parquet", clip_ref(tiny_dir), settings)
    assert same["metrics"]["fid"]["mean"] == pytest.approx(
        same["metrics"]["fid_reference"]["mean"])


def test_sr_edits_are_also_compared_with_the_hr_images(tmp_path, tiny_dir):
    """The sr leg: each upscale (of the adversarial and of the clean LR) against HR too."""
    from skimage.metrics import peak_signal_noise_ratio

    from helpers.eval_data import make_attack_set, make_sr_dataset

    dataset = make_sr_dataset(tmp_path / "sr", n=2)
    adversarial = make_attack_set(dataset, tmp_path / "adv", tiny_dir, eps=0.05,
                                  target="unet.resnet")
    options = EditOptions(batch_size=2, prompts=[0], device="cpu")
    edit(dataset, tmp_path / "clean", overrides=FAST, tiny_dir=tiny_dir, options=options)
    edit(dataset, tmp_path / "up", images_dir=adversarial, overrides=FAST, tiny_dir=tiny_dir,
         options=options)
    summary = evaluate(tmp_path / "up", tmp_path / "clean", dataset, tmp_path / "m.json",
                       tmp_path / "m.parquet", ModelRef("clip", str(tiny_dir / "clip")),
                       {"metrics": ["psnr", "ssim", "ms_ssim"], "bootstrap": 20})
    m = summary["metrics"]
    for name in ("psnr", "ssim", "ms_ssim"):
        assert {name, f"{name}_hr", f"{name}_hr_reference"} <= set(m)
        assert m[f"{name}_hr"]["higher_is_better"] and m[f"{name}_hr"]["ci_unit"] == "image"
    hr = {row["id"]: np.asarray(row["hr"]) for row in iter_rows(dataset, columns=["id", "hr"])}
    ups = {row["sample_id"]: np.asarray(row["image"]) for row in iter_rows(tmp_path / "up")}
    expected = np.mean([peak_signal_noise_ratio(hr[k], ups[k], data_range=255) for k in hr])
    assert m["psnr_hr"]["mean"] == pytest.approx(expected, abs=1e-6)  # skimage, independently
