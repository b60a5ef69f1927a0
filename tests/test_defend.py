"""Defences: deterministic, seeded per image, recorded; alone or as a step before an edit."""

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from attack_data import scene
from eval_data import FAST, make_world, one_thread
from ldmdata.cli.defend import defend_command
from ldmdata.dataset import iter_rows, read_manifest, verify
from ldmdata.defend import Defender, DefendOptions, defend, make_defence, parse_defence
from ldmdata.edit import EditOptions, edit
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import load_pipeline
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import dvc_hash

app = typer.Typer(pretty_exceptions_enable=False)
app.command()(defend_command)
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _threads():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_dir):
    return make_world(tmp_path_factory.mktemp("defend_world"), tiny_dir, n=2)


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
    assert manifest["kind"] == "defended" and manifest["n"] == 4
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
    assert "4 images defended with noise(seed=0, std=0.05)" in ok.output
    bad = runner.invoke(app, [str(world["adversarial"]), "--out", str(tmp_path / "bad"),
                              "--defence", "blur:sigma=-2"])
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: defence blur: sigma must be > 0, got -2"
