"""Attacks on the x4 upscaler (sr datasets, the LR image) and on InstructPix2Pix."""

import json
import re

import numpy as np
import pytest
import torch

from helpers.attack_data import PROMPTS, make_dataset, scene
from helpers.cli import CliRunner, command
from ldmdata.attacks.params import resolve_params
from ldmdata.attacks.runner import Attacker, attack, to_tensor
from ldmdata.dataset import iter_rows, verify
from ldmdata.edit.runner import EditOptions, edit
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import load_pipeline
from ldmdata.models.refs import ModelRef

FAST = {"iterations": 3, "num_inference_steps": 2}
app = command("attack")


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def pipes(tiny_dir):
    return {kind: load_pipeline(ModelRef(f"sd_{kind}", str(tiny_dir / f"sd_{kind}")), kind)
            for kind in ("upscale", "ip2p")}


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("editor_data")
    for kind in ("img2img", "sr"):
        make_dataset(root / kind, kind, n=1)
    return root


def _lr(*seeds: int) -> torch.Tensor:
    return torch.stack([to_tensor(scene(s, 64)[0].resize((16, 16))) for s in seeds])


def _images(*seeds: int) -> torch.Tensor:
    return torch.stack([to_tensor(scene(s, 64)[0]) for s in seeds])


def _adversarial(out: dict) -> torch.Tensor:
    return torch.from_numpy(out["images"]).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("target", ["unet.resnet", "vae.decoder"])
def test_bim_on_the_upscaler_stays_in_budget_and_raises_the_loss(pipes, target):
    params = resolve_params("bim", "sr", target, overrides={**FAST, "iterations": 4})
    assert params.editor == "upscale" and params.noise_level == 20
    attacker = Attacker(pipes["upscale"], params.editor, params)
    x = _lr(0, 1)
    out = attacker.attack(x, PROMPTS[:2], ["s0:0", "s1:1"])
    adv = _adversarial(out)
    assert adv.shape == x.shape  # the LR image is attacked
    assert (adv - x).abs().max() <= params.eps + 1e-9 and max(out["linf"]) <= params.eps
    for trace, final in zip(out["trace"], out["loss"], strict=True):
        # Projecting the study's Gaussian start (std = eps) into the ball lowers the loss
        # once; every gradient step after it raises the loss.
        assert trace[1] < trace[2] < trace[3] < final


def test_photoguard_diffusion_pulls_the_upscale_toward_its_target(pipes):
    params = resolve_params("photoguard-diffusion", "sr", overrides={
        "iterations": 4, "grad_reps": 1, "num_inference_steps": 2, "eps": 2.0,
        "step_size": 0.5})
    assert params.norm == "l2" and not params.mask_aware
    attacker = Attacker(pipes["upscale"], "upscale", params)
    x = _lr(2)
    out = attacker.attack(x, PROMPTS[:1], ["s2:0"])
    delta = (_adversarial(out) - x).flatten()
    assert 0 < delta.norm() <= params.eps + 1e-9
    trace = out["trace"][0]
    assert trace[-1] < trace[0] and out["loss"][0] < trace[0]  # the upscale nears the target


@pytest.mark.parametrize("target", ["vae.encoder", "unet.self_attn"])
def test_bim_on_instructpix2pix_raises_the_loss(pipes, target):
    params = resolve_params("bim", "img2img", target, overrides={**FAST, "editor": "ip2p"})
    attacker = Attacker(pipes["ip2p"], params.editor, params)
    x = _images(3)
    out = attacker.attack(x, PROMPTS[:1], ["s3:0"])
    assert (_adversarial(out) - x).abs().max() <= params.eps + 1e-9
    trace = out["trace"][0]
    assert trace[0] < trace[-1] < out["loss"][0]


@pytest.mark.parametrize("method,overrides", [
    ("photoguard-encoder", {"iterations": 4}),
    ("photoguard-diffusion", {"iterations": 3, "grad_reps": 1, "num_inference_steps": 2}),
])
def test_photoguard_on_instructpix2pix_lowers_its_loss(pipes, method, overrides):
    params = resolve_params(method, "img2img", overrides={**overrides, "editor": "ip2p"})
    out = Attacker(pipes["ip2p"], "ip2p", params).attack(_images(4), PROMPTS[:1], ["s4:0"])
    trace = out["trace"][0]
    assert trace[-1] < trace[0] and out["loss"][0] < trace[0]


def test_sr_attack_writes_adversarial_lr_that_the_upscaler_edits(datasets_dir, tmp_path,
                                                                 tiny_dir):
    adv = tmp_path / "adv"
    result = cli(datasets_dir / "sr", "--out", adv, "--target", "unet.resnet", "--tiny-dir",
                 tiny_dir, "--steps", 2, "--inference-steps", 2, "--noise-level", 30)
    assert result.exit_code == 0, result.output
    manifest = json.loads((adv / "manifest.json").read_text())
    assert manifest["task"] == "sr" and manifest["attack"]["editor"] == "upscale"
    assert manifest["attack"]["params"]["noise_level"] == 30
    assert manifest["model"]["id"] == str(tiny_dir / "sd_upscale") and verify(adv) == []
    clean = next(iter_rows(datasets_dir / "sr"))
    rows = list(iter_rows(adv))
    assert [r["id"] for r in rows] == ["s0-p0", "s0-p1"]
    assert [r["prompt"] for r in rows] == clean["prompts"]  # the upscaler's prompts
    for row in rows:
        assert row["image"].size == clean["lr"].size == (16, 16)
        assert 0 < row["linf"] <= 0.1
    edited = edit(datasets_dir / "sr", tmp_path / "edits", images_dir=adv,
                  overrides={"num_inference_steps": 2}, tiny_dir=tiny_dir,
                  options=EditOptions(device="cpu"))
    assert edited["editor"] == "upscale" and edited["origin"] == "adversarial"
    assert edited["transfer"] == {"model": False, "prompt": False} and edited["n"] == 2
    assert next(iter_rows(tmp_path / "edits"))["image"].size == (64, 64)


def test_editor_ip2p_attacks_instructpix2pix_on_img2img_data(datasets_dir, tmp_path, tiny_dir):
    manifest = attack(datasets_dir / "img2img", tmp_path / "adv", target="unet.ff",
                      overrides={**FAST, "iterations": 1, "editor": "ip2p"}, tiny_dir=tiny_dir)
    assert manifest["attack"]["editor"] == "ip2p" and manifest["task"] == "img2img"
    assert manifest["model"]["id"] == str(tiny_dir / "sd_ip2p")
    assert manifest["attack"]["params"]["image_guidance_scale"] == 1.5
    assert np.all([0 < r["linf"] <= 0.1 for r in iter_rows(tmp_path / "adv")])


@pytest.mark.parametrize("task,method,target,overrides,message", [
    ("sr", "bim", "unet.resnet", {"editor": "ip2p"},
     "editor ip2p cannot be attacked on a sr dataset; use upscale"),
    ("img2img", "bim", "unet.resnet", {"editor": "upscale"},
     "editor upscale cannot be attacked on a img2img dataset; use img2img or ip2p"),
    ("img2img", "bim", "unet.resnet", {"editor": "pix2pix"}, "unknown editor 'pix2pix'"),
    ("sr", "bim", "unet.resnet", {"mask_aware": True}, "mask_aware is for inpainting"),
    ("sr", "bim", "unet.resnet", {"strength": 0.5}, "the upscale editor does not read strength"),
    ("img2img", "bim", "unet.resnet", {"noise_level": 10},
     "the img2img editor does not read noise_level"),
    ("sr", "photoguard-encoder", None, {}, "the x4 upscaler never runs on the image"),
    ("sr", "bim", "unet.resnet", {"noise_level": 1000}, "noise_level must be in [0, 1000)"),
])
def test_bad_combinations_are_user_errors(task, method, target, overrides, message):
    with pytest.raises(LdmdataError, match=re.escape(message)):
        resolve_params(method, task, target, overrides=overrides)


@pytest.mark.parametrize("args,message", [
    (["--target", "vae.encoder"], "target vae.encoder is not on the upscale editor's path"),
    (["--target", "vae.quant_conv"], "targets for upscale: unet.self_attn"),
    (["--target", "unet.resnet", "--editor", "ip2p"], "editor ip2p cannot be attacked on a sr"),
    (["--target", "unet.resnet", "--mask-aware"], "mask_aware is for inpainting"),
])
def test_bad_sr_options_give_one_line_and_exit_2(datasets_dir, tmp_path, tiny_dir, args,
                                                message):
    result = cli(datasets_dir / "sr", "--out", tmp_path / "o", "--tiny-dir", tiny_dir, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()


def test_list_targets_says_which_editors_each_applies_to():
    lines = {line.split()[0]: line for line in cli("--list-targets").output.splitlines()}
    assert "img2img,inpaint,upscale,ip2p" in lines["unet.resnet"]
    assert "upscale" not in lines["vae.encoder"] and "ip2p" in lines["vae.encoder"]
    assert "unet.conv_in" in lines
