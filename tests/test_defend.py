"""Defences: deterministic, seeded per image, recorded; alone or as a step before an edit."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ldmdata.purify.impress as impress_module
from helpers.attack_data import scene
from helpers.cli import CliRunner, command
from helpers.eval_data import FAST
from ldmdata.dataset import iter_rows, read_manifest, verify
from ldmdata.defend import DefendOptions, defend
from ldmdata.edit import EditOptions, edit
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import load_pipeline
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import dvc_hash
from ldmdata.purify import Defender, make_defence, parse_defence
from ldmdata.purify import spec as purify_spec
from ldmdata.purify.diffusion import grid_boxes, gridpure
from ldmdata.seeds import derive_seed

app = command("defend")
runner = CliRunner()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255


def images() -> list[Image.Image]:
    return [scene(i, 64)[0] for i in range(2)]


@pytest.mark.parametrize("spec", ["jpeg:quality=30", "blur:sigma=1.5", "noise:std=0.1",
                                  "resize:factor=4"])
def test_each_defence_is_deterministic_keeps_the_size_and_changes_the_image(spec):
    defender = Defender(parse_defence(spec))
    first, again = defender(images(), ["a", "b"]), defender(images(), ["a", "b"])
    for before, out, repeat in zip(images(), first, again, strict=True):
        assert out.size == before.size and out.mode == "RGB"
        assert out.tobytes() == repeat.tobytes()
        assert np.abs(pixels(out) - pixels(before)).max() > 0


def test_stronger_settings_change_more():
    image = images()[:1]

    def change(spec):
        return np.abs(pixels(Defender(parse_defence(spec))(image, ["k"])[0])
                      - pixels(image[0])).mean()

    assert change("jpeg:quality=10") > change("jpeg:quality=95")
    assert change("blur:sigma=3") > change("blur:sigma=0.5")
    assert change("noise:std=0.2") > change("noise:std=0.02")


def test_noise_is_seeded_by_image_key_not_by_order():
    defender = Defender(parse_defence("noise:std=0.1,seed=3"))
    a, b = images()
    together = defender([a, b], ["a", "b"])
    alone = defender([b], ["b"])
    assert together[1].tobytes() == alone[0].tobytes()
    assert defender([a], ["other"])[0].tobytes() != together[0].tobytes()
    reseeded = Defender(parse_defence("noise:std=0.1,seed=4"))([a], ["a"])[0]
    assert reseeded.tobytes() != together[0].tobytes()


def test_noisy_upscaling_goes_through_the_x4_upscaler(tiny_dir):
    upscaler = load_pipeline(ModelRef("sd_upscale", str(tiny_dir / "sd_upscale")), "upscale")
    defender = Defender(parse_defence("noisy_upscale:num_inference_steps=2"), upscaler)
    out = defender(images(), ["a", "b"])
    assert [im.size for im in out] == [(64, 64), (64, 64)]
    assert [im.tobytes() for im in out] == [im.tobytes() for im in defender(images(), ["a", "b"])]
    alone = defender(images()[:1], ["a"])[0]  # batched kernels round within one level
    assert np.abs(pixels(alone) - pixels(out[0])).max() <= 1 / 255 + 1e-9
    assert np.abs(pixels(out[0]) - pixels(images()[0])).mean() > 0.01
    with pytest.raises(LdmdataError, match="needs the x4 upscaler"):
        Defender(parse_defence("noisy_upscale"))


@pytest.mark.parametrize("spec, message", [
    ("jpeg:quality=0", "quality must be an integer >= 1"),
    ("blur:sigma=0", "sigma must be > 0"),
    ("noise:std=-1", "std must be >= 0"),
    ("resize:factor=1", "factor must be > 1"),
    ("resize:resample=magic", "resample must be one of"),
    ("jpeg:q=3", "unknown parameter"),
    ("sharpen", "unknown defence 'sharpen'"),
    ("jpeg:quality", "write parameters as key=value"),
    ({"sigma": 2}, "needs a method key"),
    ("diffpure:strength=2", "strength must be > 0 and <= 1"),
    ("diffpure:strength=0.01", "leaves no denoising step"),
    ("gridpure:grid=20", "grid must be a multiple of 8"),
    ("gridpure:grid=32,stride=0", "stride must be an integer >= 1 and <= 32"),
    ("gridpure:gamma=1.5", "gamma must be >= 0 and <= 1"),
    ("impress:lr=0", "lr must be > 0"),
    ("impress:closeness=ssim", "closeness must be one of auto, lpips, l2"),
])
def test_bad_defences_are_one_line_errors(spec, message):
    with pytest.raises(LdmdataError, match=message):
        parse_defence(spec)


def test_parse_forms_agree():
    assert parse_defence("blur:sigma=2") == parse_defence({"method": "blur", "sigma": 2})
    assert parse_defence("none") is None and parse_defence(None) is None
    assert make_defence("jpeg").params == {"quality": 75}
    assert make_defence("jpeg", {"quality": 50}).label() == "jpeg(quality=50)"


def test_defending_a_set_records_the_defence_and_the_input(world, tmp_path):
    out = tmp_path / "defended"
    manifest = defend(world["adversarial"], out, "jpeg:quality=40")
    assert manifest["kind"] == "defended" and manifest["n"] == 6  # 3 samples x 2 prompts
    assert manifest["defence"] == {"method": "jpeg", "params": {"quality": 40},
                                   "label": "jpeg(quality=40)"}
    assert manifest["input"]["dvc_hash"] == dvc_hash(world["adversarial"])
    assert manifest["input"]["origin"] == "adversarial"
    assert manifest["input"]["dataset_hash"] == dvc_hash(world["dataset"])
    assert manifest["input"]["attack"]["target"] == "vae.encoder"
    assert verify(out) == []
    rows = list(iter_rows(out))
    assert [(r["id"], r["prompt_index"]) for r in rows[:2]] == [("s0-p0", 0), ("s0-p1", 1)]
    assert all(0 < r["linf"] <= 1 and r["l2"] > 0 for r in rows)
    again = defend(world["adversarial"], tmp_path / "again", "jpeg:quality=40")
    assert again["content_hash"] == manifest["content_hash"]
    with pytest.raises(LdmdataError, match="already defended"):
        defend(out, tmp_path / "twice", "blur")


def test_a_defended_set_edits_like_an_in_memory_defence(world, tmp_path, tiny_dir):
    defend(world["adversarial"], tmp_path / "defended", "blur:sigma=1")
    options = EditOptions(batch_size=4, device="cpu")
    from_set = edit(world["dataset"], tmp_path / "a", images_dir=tmp_path / "defended",
                    overrides=FAST, tiny_dir=tiny_dir, options=options)
    in_memory = edit(world["dataset"], tmp_path / "b", images_dir=world["adversarial"],
                     defence="blur:sigma=1", overrides=FAST, tiny_dir=tiny_dir, options=options)
    assert from_set["input_kind"] == in_memory["input_kind"] == "defended"
    assert from_set["defence"]["label"] == in_memory["defence"]["label"] == "blur(sigma=1)"
    assert from_set["origin"] == in_memory["origin"] == "adversarial"
    assert from_set["attack"]["target"] == "vae.encoder"
    assert from_set["content_hash"] == in_memory["content_hash"]
    with pytest.raises(LdmdataError, match="already defended"):
        edit(world["dataset"], tmp_path / "c", images_dir=tmp_path / "defended",
             defence="jpeg", tiny_dir=tiny_dir, options=options)


def test_defending_a_clean_dataset(world, tmp_path):
    manifest = defend(world["dataset"], tmp_path / "d", "resize:factor=2",
                      options=DefendOptions(limit=1))
    assert manifest["n"] == 1 and manifest["input"]["origin"] == "clean"
    row = next(iter_rows(tmp_path / "d"))
    assert row["prompt_index"] is None and row["sample_id"] == "s0"
    assert read_manifest(tmp_path / "d")["input"]["dataset_hash"] == dvc_hash(world["dataset"])


def test_cli_defends_and_bad_options_exit_2(world, tmp_path):
    ok = runner.invoke(app, [str(world["adversarial"]), "--out", str(tmp_path / "ok"),
                             "--defence", "noise:std=0.05"])
    assert ok.exit_code == 0, ok.output
    assert "6 images defended with noise(seed=0, std=0.05)" in ok.output
    bad = runner.invoke(app, [str(world["adversarial"]), "--out", str(tmp_path / "bad"),
                              "--defence", "blur:sigma=-2"])
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: defence blur: sigma must be > 0, got -2"


# -- the diffusion purifiers ------------------------------------------------------------------
FAST_PURIFIERS = [
    "diffpure:strength=0.5,num_inference_steps=2",
    "gridpure:grid=32,stride=16,iterations=2,strength=0.5,num_inference_steps=2",
    "impress:iterations=3",
]


@pytest.fixture(scope="module")
def img2img(tiny_dir):
    return load_pipeline(ModelRef("sd_img2img", str(tiny_dir / "sd_img2img")), "img2img")


@pytest.mark.parametrize("spec", FAST_PURIFIERS)
def test_purifiers_are_seeded_per_image_and_keep_the_size(img2img, spec):
    defender = Defender(parse_defence(spec), img2img)
    out = defender(images(), ["a", "b"])
    assert [im.size for im in out] == [(64, 64), (64, 64)]
    assert [im.tobytes() for im in out] == [im.tobytes() for im in defender(images(), ["a", "b"])]
    assert np.abs(pixels(out[0]) - pixels(images()[0])).mean() > 0.001
    assert defender(images()[:1], ["other"])[0].tobytes() != out[0].tobytes()
    reseeded = Defender(parse_defence(spec + ",seed=5"), img2img)(images()[:1], ["a"])[0]
    assert reseeded.tobytes() != out[0].tobytes()
    with pytest.raises(LdmdataError, match="needs the Stable Diffusion img2img pipeline"):
        Defender(parse_defence(spec))


def test_diffpure_is_the_img2img_pipeline_with_an_empty_prompt(img2img):
    """The reference: diffusers' img2img called by hand with the documented seed."""
    defence = parse_defence("diffpure:strength=0.5,num_inference_steps=4,seed=7")
    ours = Defender(defence, img2img)(images(), ["a", "b"])
    for image, key, out in zip(images(), ["a", "b"], ours, strict=True):
        gen = torch.Generator().manual_seed(derive_seed(7, "diffpure", key))
        ref = img2img(prompt="", image=image, strength=0.5, num_inference_steps=4,
                      guidance_scale=1.0, generator=gen, output_type="pil").images[0]
        assert np.abs(pixels(ref) - pixels(out)).max() <= 1 / 255 + 1e-9  # batched kernels


class Brighter:
    """A stand-in img2img pipeline that adds ``step`` / 255 to every pixel it is given."""

    def __init__(self, step: int):
        self.step, self.sizes = step, []

    def __call__(self, prompt, image, **kwargs):
        self.sizes += [im.size for im in image]
        out = [Image.fromarray(np.clip(np.asarray(im, dtype=np.int16) + self.step, 0, 255)
                               .astype(np.uint8)) for im in image]
        return type("Out", (), {"images": out})()


def test_gridpure_crops_merges_and_blends_like_the_paper():
    assert grid_boxes(512, 512, 256, 128) == [(x, y, x + 256, y + 256)
                                              for y in (0, 128, 256) for x in (0, 128, 256)]
    assert grid_boxes(300, 256, 256, 128) == [(0, 0, 256, 256), (44, 0, 300, 256)]
    params = {**parse_defence("gridpure:grid=32,stride=16,iterations=1,gamma=0.1").params}
    image = Image.fromarray(np.full((64, 64, 3), 100, np.uint8))
    pipe = Brighter(10)
    out = gridpure(pipe, [image], ["k"], params)[0]
    # every crop agrees (+10), so the merge is +10 and the blend 0.9 * 110 + 0.1 * 100 = 109
    assert np.unique(np.asarray(out)).tolist() == [109]
    assert pipe.sizes == [(32, 32)] * (9 + 1)  # 3 x 3 grids and the corner square
    twice = gridpure(Brighter(10), [image], ["k"], {**params, "iterations": 2})[0]
    assert np.unique(np.asarray(twice)).tolist() == [118]  # 0.9 * 119 + 0.1 * 109 = 118


def test_impress_makes_the_vae_round_trip_more_consistent(img2img, monkeypatch):
    monkeypatch.setattr(purify_spec, "lpips_weights", lambda: Path("/nonexistent/vgg16.pth"))
    defence = parse_defence("impress:iterations=20,lr=0.01,init_noise=0")
    assert defence.params["closeness"] == "l2"  # recorded: what ran
    image = images()[:1]
    out = Defender(defence, img2img)(image, ["a"])

    def inconsistency(im):
        x = torch.from_numpy(pixels(im)).permute(2, 0, 1)[None].float() * 2 - 1
        with torch.no_grad():
            return (img2img.vae(x).sample - x).pow(2).mean().item()

    assert inconsistency(out[0]) < 0.9 * inconsistency(image[0])
    assert np.abs(pixels(out[0]) - pixels(image[0])).max() > 0
    with pytest.raises(LdmdataError, match="closeness=lpips needs the VGG16 weights"):
        parse_defence("impress:closeness=lpips")


def test_impress_uses_the_lpips_hinge_when_its_weights_are_here(img2img, monkeypatch, tmp_path):
    weights = tmp_path / "vgg16.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr(purify_spec, "lpips_weights", lambda: weights)
    seen = []

    def fake_lpips(device):  # a stand-in distance: the real one needs the VGG16 weights
        def distance(x, y):
            seen.append(x.shape)
            return (x - y).abs().mean(dim=(1, 2, 3), keepdim=True)
        return distance

    monkeypatch.setattr(impress_module, "lpips_vgg", fake_lpips)
    defence = parse_defence("impress:iterations=2")
    assert defence.params["closeness"] == "lpips"
    Defender(defence, img2img)(images(), ["a", "b"])
    assert seen == [(2, 3, 64, 64)] * 2


@pytest.mark.slow
@pytest.mark.parametrize("spec", FAST_PURIFIERS)
def test_defending_with_a_purifier_is_seeded_and_resumable(world, tmp_path, tiny_dir, spec):
    options = DefendOptions(batch_size=1, shard_size=2, limit=1)
    first = defend(world["adversarial"], tmp_path / "a", spec, tiny_dir=tiny_dir, options=options)
    assert first["defence_model"]["role"] == "sd_img2img"
    assert first["defence"]["method"] == spec.split(":")[0]

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        defend(world["adversarial"], tmp_path / "b", spec, tiny_dir=tiny_dir,
               options=DefendOptions(batch_size=1, shard_size=1, limit=1), progress=interrupt)
    assert (tmp_path / "b" / "data" / "train-00000.parquet").exists()
    resumed = defend(world["adversarial"], tmp_path / "b", spec, tiny_dir=tiny_dir,
                     options=DefendOptions(batch_size=1, shard_size=1, limit=1))
    again = defend(world["adversarial"], tmp_path / "c", spec, tiny_dir=tiny_dir, options=options)
    assert resumed["content_hash"] == again["content_hash"] == first["content_hash"]
    other = defend(world["adversarial"], tmp_path / "d", spec + ",seed=1", tiny_dir=tiny_dir,
                   options=options)
    assert other["content_hash"] != first["content_hash"]


def test_an_edit_run_purifies_with_diffpure_first(world, tmp_path, tiny_dir):
    manifest = edit(world["dataset"], tmp_path / "e", images_dir=world["adversarial"],
                    defence="diffpure:strength=0.5,num_inference_steps=2", overrides=FAST,
                    tiny_dir=tiny_dir, options=EditOptions(limit=1, device="cpu"))
    assert manifest["input_kind"] == "defended" and manifest["defence"]["method"] == "diffpure"
    assert manifest["defence_model"]["role"] == "sd_img2img"


def test_gridpure_on_images_smaller_than_its_grid_exits_2_before_any_work(world, tmp_path,
                                                                           tiny_dir):
    result = runner.invoke(app, [str(world["adversarial"]), "--out", str(tmp_path / "g"),
                                 "--defence", "gridpure:grid=128", "--tiny-dir", str(tiny_dir)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: defence gridpure: a 64x64 image is smaller than its 128 px grid; "
        "use a smaller grid")
    assert not (tmp_path / "g").exists()
    bad = runner.invoke(app, [str(world["adversarial"]), "--out", str(tmp_path / "s"),
                              "--defence", "diffpure:strength=2"])
    assert bad.exit_code == 2
    assert bad.output.strip() == (
        "error: defence diffpure: strength must be > 0 and <= 1, got 2")
