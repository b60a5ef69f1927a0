"""Both protocols against independent references: scikit-image for ``ldmdata``, the study's
torchmetrics recipe (JPEG'd, 512 px stacks) for ``study``."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchmetrics.image.fid import FrechetInceptionDistance

from helpers.eval_data import make_world, one_thread
from ldmdata.dataset import iter_rows
from ldmdata.metrics import evaluate, ms_ssim, psnr, ssim
from ldmdata.metrics.features import ClipImageFeatures, Precomputed
from ldmdata.models.clip import ClipScorer
from ldmdata.models.refs import ModelRef

PHOTOS = ("astronaut", "coffee", "chelsea")


def distorted(name: str, how: str) -> tuple[np.ndarray, np.ndarray]:
    """A bundled photo and a mildly distorted copy (Gaussian noise or JPEG), uint8."""
    clean = getattr(data, name)()
    if how == "noise":
        noise = np.random.default_rng(0).normal(0, 6, clean.shape)
        return clean, np.clip(clean + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(clean).save(buffer, format="JPEG", quality=40)
    return clean, np.asarray(Image.open(buffer)).copy()


def tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1)


@pytest.mark.parametrize("how", ["noise", "jpeg"])
@pytest.mark.parametrize("name", PHOTOS)
def test_ssim_and_psnr_equal_scikit_image_on_photos(name, how):
    clean, bad = distorted(name, how)
    x, y = tensor(bad), tensor(clean)
    reference = skimage_ssim(bad / 255, clean / 255)
    assert abs(float(ssim(x, y)) - reference) < 1e-4
    assert float(psnr(x, y)) == pytest.approx(
        peak_signal_noise_ratio(clean / 255, bad / 255, data_range=1), abs=1e-9)


@pytest.mark.slow
def test_torchmetrics_own_ssim_averages_the_padded_border():
    """Why the core crops: torchmetrics (since #2721) differs from the reference."""
    clean, bad = distorted("astronaut", "noise")
    x, y = tensor(bad), tensor(clean)
    theirs = float(structural_similarity_index_measure(x, y, data_range=1.0))
    assert abs(theirs - skimage_ssim(bad / 255, clean / 255)) > 1e-3


@pytest.mark.slow
def test_ms_ssim_is_torchmetrics_with_the_last_scale_cropped_like_scikit_image():
    """Our MS-SSIM = torchmetrics' with its last-scale SSIM (the only uncropped term there)
    replaced by scikit-image's SSIM of the 4x average-pooled images."""
    clean, bad = distorted("chelsea", "jpeg")
    x, y = tensor(bad), tensor(clean)
    theirs = float(multiscale_structural_similarity_index_measure(x, y, data_range=1.0))
    small_x, small_y = x, y
    for _ in range(4):
        small_x, small_y = F.avg_pool2d(small_x, 2), F.avg_pool2d(small_y, 2)
    last_full = float(structural_similarity_index_measure(small_x, small_y, data_range=1.0))
    last_ref = skimage_ssim(small_x[0].permute(1, 2, 0).numpy(),
                            small_y[0].permute(1, 2, 0).numpy())
    expected = theirs * (last_ref / last_full) ** 0.1333
    assert float(ms_ssim(x, y)) == pytest.approx(expected, abs=1e-8)
    assert float(ms_ssim(x, x)) == pytest.approx(1.0)


# --- the study protocol, recomputed the way the study's notebook did ----------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_dir):
    with one_thread():
        yield make_world(tmp_path_factory.mktemp("study_world"), tiny_dir)


def as_study_stack(images: list[Image.Image], jpeg: bool) -> torch.Tensor:
    """Saved as .jpg by PIL (defaults), read back, resized to 512 (PIL default), 0-255."""
    out = []
    for image in images:
        if jpeg:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG")
            image = Image.open(buffer)
        image = image.convert("RGB").resize((512, 512))
        out.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
    return torch.stack(out)


def test_study_protocol_reproduces_the_study_notebook(world, tmp_path, tiny_dir):
    clip = ModelRef("clip", str(tiny_dir / "clip"))
    settings = {"protocol": "study", "device": "cpu", "bootstrap": 50, "set_bootstrap": 5,
                "features": "clip", "precision": "float32"}
    with one_thread():
        summary = evaluate(world["adv_edits"], world["clean_edits"], world["dataset"],
                           tmp_path / "m.json", tmp_path / "t.parquet", clip, settings)
        edits = list(iter_rows(world["adv_edits"], columns=["sample_id", "prompt_index",
                                                             "prompt", "image"]))
        refs = {(r["sample_id"], r["prompt_index"]): r["image"] for r in
                iter_rows(world["clean_edits"], columns=["sample_id", "prompt_index", "image"])}
        fake = as_study_stack([r["image"] for r in edits], jpeg=True).float()
        real = as_study_stack([refs[(r["sample_id"], r["prompt_index"])] for r in edits],
                              jpeg=True).float()

        pooled = PeakSignalNoiseRatio(data_range=1.0)
        pooled.update(fake / 255, real / 255)
        # the study's torchmetrics (2023) averaged the SSIM map without its 5 px border;
        # today's class returns the full map, so crop it as that version did
        full = StructuralSimilarityIndexMeasure(data_range=1.0, return_full_image=True,
                                                reduction="none")
        full.update(fake, real)
        _, image_map = full.compute()
        study_ssim = float(image_map[..., 5:-5, 5:-5].mean())
        today = StructuralSimilarityIndexMeasure(data_range=1.0)
        today.update(fake, real)

        scorer = ClipScorer(clip)
        pil = [Image.fromarray(f.permute(1, 2, 0).numpy().astype(np.uint8)) for f in fake]
        clip_scores = [s[0] for s in scorer.image_text_scores(pil, [[r["prompt"]] for r in edits])]
        sources = {r["id"]: r["image"] for r in iter_rows(world["dataset"],
                                                          columns=["id", "image"])}
        features = ClipImageFeatures(scorer)
        fid = FrechetInceptionDistance(feature=Precomputed(features.num_features))
        fid.update(features(as_study_stack(list(sources.values()), jpeg=False)).double(),
                   real=True)
        fid.update(features(fake.to(torch.uint8)).double(), real=False)

    m = summary["metrics"]
    assert summary["protocol"] == "study"
    assert m["psnr"]["mean"] == pytest.approx(float(pooled.compute()), abs=1e-4)
    assert m["psnr"]["statistic"] == "pooled" and m["psnr"]["pooled"] is True
    assert m["ssim"]["mean"] == pytest.approx(study_ssim, abs=1e-5)
    assert abs(m["ssim"]["mean"] - float(today.compute())) < 0.05  # only the border differs
    assert m["clip_score"]["mean"] == pytest.approx(np.mean(clip_scores), abs=1e-4)
    assert m["fid"]["mean"] == pytest.approx(float(fid.compute()), rel=1e-4)
    assert m["ms_ssim"]["scales"] == [5] and 0 < m["ms_ssim"]["mean"] <= 1
    assert m["psnr"]["ci_low"] <= m["psnr"]["mean"] <= m["psnr"]["ci_high"]
    ours = evaluate(world["adv_edits"], world["clean_edits"], world["dataset"],
                    tmp_path / "o.json", tmp_path / "o.parquet", clip,
                    {**settings, "protocol": "ldmdata", "metrics": ["ssim"]})
    assert ours["metrics"]["ssim"]["mean"] != pytest.approx(m["ssim"]["mean"], abs=1e-3)
