"""Attacks that see the defence: EOT specs, differentiable defences, BPDA, and the payoff."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from helpers.attack_data import PROMPTS, make_dataset, scene
from helpers.cli import CliRunner, command
from ldmdata.attacks.eot import EotTransforms, parse_eot, split_eot
from ldmdata.attacks.forward import EditBatch
from ldmdata.attacks.params import resolve_params
from ldmdata.attacks.runner import Attacker, RunOptions, attack, attack_from_params, to_tensor
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import load_pipeline
from ldmdata.models.refs import ModelRef
from ldmdata.purify import Defender, parse_defence
from ldmdata.seeds import derive_seed

app = command("attack")
runner = CliRunner()


@pytest.fixture(scope="module")
def img2img(tiny_dir):
    return load_pipeline(ModelRef("sd_img2img", str(tiny_dir / "sd_img2img")), "img2img")


def _images(*seeds: int) -> torch.Tensor:
    return torch.stack([to_tensor(scene(s, 64)[0]) for s in seeds])


def pil_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Real JPEG (libjpeg through Pillow) of 8-bit images in [0, 1]."""
    out = []
    for a in (x * 255).round().byte().permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(a).save(buffer, format="JPEG", quality=quality)
        out.append(np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def test_specs_split_on_defences_and_keep_each_ones_parameters():
    assert split_eot("jpeg:quality=75,blur,resize:factor=2,resample=bilinear") == [
        "jpeg:quality=75", "blur", "resize:factor=2,resample=bilinear"]
    entries = parse_eot("jpeg:quality=50,diffpure:strength=0.5,num_inference_steps=2")
    assert entries[0] == {"method": "jpeg", "params": {"quality": 50}, "bpda": None}
    assert entries[1]["bpda"] == "identity" and entries[1]["params"]["strength"] == 0.5
    mapping = {"method": "gridpure", "grid": 32, "stride": 16, "bpda": "identity"}
    assert parse_eot([mapping])[0]["bpda"] == "identity"
    assert parse_eot(entries) == entries  # canonical entries parse to themselves
    params = resolve_params("bim", "img2img", "vae.encoder",
                            overrides={"eot": "noise:std=0.1", "eot_samples": 2})
    assert list(params.as_dict()["eot"]) == [
        {"method": "noise", "params": {"std": 0.1, "seed": 0}, "bpda": None}]


@pytest.mark.parametrize("overrides, message", [
    ({"eot": "sharpen"}, "eot: unknown defence 'sharpen'"),
    ({"eot": "diffpure:strength=2"}, "eot: defence diffpure: strength must be > 0 and <= 1"),
    ({"eot": "jpeg:bpda=identity"}, "eot jpeg: it is differentiated through"),
    ({"eot": "gridpure:bpda=through"}, "bpda=through is available for diffpure only"),
    ({"eot": "impress:bpda=maybe"}, "bpda must be one of identity, through"),
    ({"eot_samples": 3}, "eot_samples needs eot"),
    ({"eot": "jpeg", "eot_samples": 0}, "eot_samples must be an integer >= 1"),
])
def test_bad_eot_settings_are_one_line_errors(overrides, message):
    with pytest.raises(LdmdataError, match=message):
        resolve_params("bim", "img2img", "vae.encoder", overrides=overrides)


def _transform(spec, pipes=None, seed=0):
    return EotTransforms(parse_eot(spec), pipes or {}, seed)


def test_differentiable_defences_match_their_pixel_versions_and_pass_gradients():
    x = _images(0, 1)
    keys = ["a", "b"]
    jpeg = _transform("jpeg:quality=50")(x, keys, (0, 0, 0))
    assert (jpeg - pil_jpeg(x, 50)).abs().mean() < 0.02  # kornia's codec vs libjpeg
    blur = _transform("blur:sigma=1")(x, keys, (0, 0, 0))
    ref = gaussian_filter(x.numpy(), sigma=(0, 0, 1, 1), mode="reflect", truncate=4.0)
    inner = (slice(None), slice(None), slice(5, -5), slice(5, -5))  # borders differ (see docs)
    assert np.abs(blur.numpy()[inner] - ref[inner]).max() < 1e-5
    resized = _transform("resize:factor=2")(x, keys, (0, 0, 0))
    pil = torch.stack([to_tensor(scene(s, 64)[0].resize((32, 32), Image.Resampling.BICUBIC)
                                 .resize((64, 64), Image.Resampling.BICUBIC)) for s in (0, 1)])
    assert (resized - pil).abs().mean() < 0.01  # antialiased bicubic, as Pillow's
    noise = _transform("noise:std=0.1,seed=3")
    drawn = noise(x, keys, (1, 0, 2))
    expected = (x[1] + 0.1 * torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(
        derive_seed(3, "noise", "b:eot:1:0:2")))).clamp(0, 1)
    assert torch.equal(drawn[1], expected)
    assert not torch.equal(noise(x, keys, (2, 0, 2)), drawn)  # fresh draw per iteration
    for spec in ("jpeg:quality=50", "blur:sigma=1", "resize:factor=2", "noise:std=0.05"):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_transform(spec)(xg, keys, (0, 0, 0)).sum(), xg)
        assert g.abs().sum() > 0 and torch.isfinite(g).all()


def test_bpda_runs_the_real_purifier_forward_and_the_identity_backward(img2img):
    spec = "diffpure:strength=0.5,num_inference_steps=2"
    x = _images(2).requires_grad_(True)
    out = _transform(spec, {"img2img": img2img})(x, ["k"], (0, 0, 0))
    real = Defender(parse_defence(spec), img2img)([scene(2, 64)[0]], ["k:eot:0:0:0"])[0]
    assert torch.allclose(out.detach()[0], to_tensor(real), atol=1e-6)
    (g,) = torch.autograd.grad((out * torch.arange(3.0).view(1, 3, 1, 1)).sum(), x)
    assert torch.equal(g, torch.arange(3.0).view(1, 3, 1, 1).expand_as(g))
    through = _transform(spec + ",bpda=through", {"img2img": img2img})
    xt = _images(2).requires_grad_(True)
    (gt,) = torch.autograd.grad(through(xt, ["k"], (0, 0, 0)).sum(), xt)
    assert gt.abs().sum() > 0 and not torch.allclose(gt, torch.ones_like(gt))


@pytest.mark.parametrize("method, target, overrides", [
    ("bim", "vae.encoder", {}),
    ("photoguard-encoder", None, {"eps": 0.06, "step_size": 0.01}),
])
def test_an_eot_jpeg_attack_survives_real_jpeg_better_than_a_blind_one(img2img, method, target,
                                                                       overrides):
    """Same budget and iterations; the objective measured on the PIL-JPEG'd stored image."""
    x, keys = _images(0, 1), ["s0:0", "s1:1"]
    after_jpeg = {}
    for eot in (None, "jpeg:quality=50"):
        params = resolve_params(method, "img2img", target, overrides={
            "iterations": 10, "num_inference_steps": 2, "eot": eot, **overrides})
        attacker = Attacker(img2img, "img2img", params)
        out = attacker.attack(x, PROMPTS[:2], keys)
        stored = torch.from_numpy(out["images"]).permute(0, 3, 1, 2).float() / 255
        assert (stored - x).abs().max() <= params.eps + 1e-6
        objective = attacker.objective(EditBatch(PROMPTS[:2], [params.seed] * 2), x, keys)
        after_jpeg[eot] = objective.evaluate(pil_jpeg(stored, 50))
    blind, seeing = after_jpeg[None], after_jpeg["jpeg:quality=50"]
    if method == "bim":  # maximised: more feature distortion left after JPEG
        assert (seeing > 2 * blind).all()
    else:  # minimised: the latent stays nearer the target after JPEG
        assert (seeing < 0.85 * blind).all()


def test_eot_attack_records_the_defences_and_their_bpda(tmp_path, tiny_dir):
    data = make_dataset(tmp_path / "data", "img2img", n=1)
    overrides = {"iterations": 1, "num_inference_steps": 2, "eot_samples": 2,
                 "eot": "jpeg:quality=60,diffpure:strength=0.5,num_inference_steps=2"}
    kwargs = dict(method="bim", target="vae.encoder", overrides=overrides, tiny_dir=tiny_dir,
                  options=RunOptions(prompts=[0]))
    manifest = attack(data, tmp_path / "a", **kwargs)
    eot = manifest["attack"]["eot"]
    assert [(e["method"], e["bpda"]) for e in eot] == [("jpeg", None), ("diffpure", "identity")]
    assert manifest["attack"]["params"]["eot_samples"] == 2
    assert manifest["attack"]["eot_models"]["img2img"]["role"] == "sd_img2img"
    again = attack(data, tmp_path / "b", **kwargs)
    assert again["content_hash"] == manifest["content_hash"]


def test_cli_takes_eot_and_bad_specs_exit_2(tmp_path, tiny_dir):
    data = make_dataset(tmp_path / "data", "img2img", n=1)
    ok = runner.invoke(app, [str(data), "--out", str(tmp_path / "ok"), "--target", "vae.encoder",
                             "--steps", "1", "--inference-steps", "2", "--prompts", "0",
                             "--eot", "jpeg:quality=70,blur:sigma=0.5", "--eot-samples", "2",
                             "--tiny-dir", str(tiny_dir)])
    assert ok.exit_code == 0, ok.output
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    assert [e["method"] for e in manifest["attack"]["eot"]] == ["jpeg", "blur"]
    bad = runner.invoke(app, [str(data), "--out", str(tmp_path / "bad"), "--target",
                              "vae.encoder", "--eot", "jpeg,sharpen:x=1"])
    assert bad.exit_code == 2
    assert bad.output.strip().startswith("error: eot: unknown defence 'sharpen'")
    assert "\n" not in bad.output.strip() and not (tmp_path / "bad").exists()


def test_the_stage_reads_eot_from_each_methods_params_yaml_overrides(tmp_path, tiny_dir):
    data = make_dataset(tmp_path / "data", "img2img", n=1)
    params = {"attack": {"prompts": "0", "threads": 1, "bim": {
        "iterations": 1, "num_inference_steps": 2, "eot": ["jpeg:quality=75", {"method": "blur"}],
        "eot_samples": 2}}}
    manifest = attack_from_params(data, tmp_path / "a", "vae.encoder", params, tiny_dir)
    assert [e["method"] for e in manifest["attack"]["eot"]] == ["jpeg", "blur"]
    assert manifest["attack"]["params"]["eot_samples"] == 2
