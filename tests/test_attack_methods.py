"""The attacks on the tiny models: budgets, loss rising, beating noise, per-sample references."""

import numpy as np
import pytest
import torch

from helpers.attack_data import PROMPTS, adversarial_images, images, repaint_masks
from ldmdata.attacks.forward import EditBatch
from ldmdata.attacks.methods import quantize
from ldmdata.attacks.params import resolve_params
from ldmdata.attacks.runner import Attacker
from ldmdata.errors import LdmdataError

FAST = {"iterations": 3, "num_inference_steps": 2}


@pytest.mark.parametrize("target", ["vae.encoder", "unet.resnet"])
def test_bim_stays_in_budget_and_raises_the_loss(pipes, target):
    params = resolve_params("bim", "img2img", target, overrides=FAST)
    attacker = Attacker(pipes["img2img"], "img2img", params)
    x = images(0, 1)
    out = attacker.attack(x, PROMPTS[:2], ["s0:0", "s1:1"])
    adv = adversarial_images(out)
    assert out["images"].dtype == np.uint8  # stored 8-bit: within [0, 1] by construction
    assert (adv - x).abs().max() <= params.eps + 1e-9
    assert max(out["linf"]) <= params.eps and min(out["linf"]) > params.eps / 2
    for trace, final in zip(out["trace"], out["loss"], strict=True):
        assert len(trace) == params.iterations
        assert trace[0] < trace[1] < trace[-1] < final  # every step raises the distortion


@pytest.mark.parametrize("target", ["vae.encoder", "unet.self_attn"])
def test_attack_beats_gaussian_noise_of_the_same_linf(pipes, target):
    params = resolve_params("bim", "img2img", target, overrides=FAST)
    attacker = Attacker(pipes["img2img"], "img2img", params)
    x = images(2)
    out = attacker.attack(x, PROMPTS[:1], ["s2:0"])
    linf = out["linf"][0]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    noisy = (x + noise / noise.abs().max() * linf).clamp(0, 1)
    objective = attacker.objective(EditBatch(PROMPTS[:1], [params.seed]), x, ["s2:0"])
    assert out["loss"][0] > 10 * objective.evaluate(noisy).item() > 0


def test_clean_reference_is_per_sample(pipes):
    """The notebook's defect compared every image with the first image's clean features."""
    params = resolve_params("bim", "img2img", "unet.resnet", overrides=FAST)
    attacker = Attacker(pipes["img2img"], "img2img", params)
    x = images(3, 4)
    objective = attacker.objective(EditBatch(PROMPTS[:2], [params.seed] * 2), x, ["s3:0", "s4:1"])
    assert objective.evaluate(x).tolist() == [0.0, 0.0]  # each image against its own clean run
    swapped = objective.evaluate(x.flip(0))
    assert (swapped > 0).all()  # ...which differs from the other image's
    together = attacker.attack(x, PROMPTS[:2], ["s3:0", "s4:1"])
    alone = attacker.attack(x[1:], PROMPTS[1:2], ["s4:1"])
    np.testing.assert_allclose(together["trace"][1], alone["trace"][0], rtol=1e-3)


def test_photoguard_encoder_pulls_the_latent_to_the_target_inside_the_kept_region(pipes):
    params = resolve_params("photoguard-encoder", "inpaint", overrides={"iterations": 4})
    assert params.mask_aware and params.target_image == "gray" and params.eps == 0.06
    attacker = Attacker(pipes["inpaint"], "inpaint", params)
    x, repaint = images(5), repaint_masks(5)
    out = attacker.attack(x, PROMPTS[:1], ["s5:0"], repaint)
    delta = adversarial_images(out) - x
    assert delta.abs().max() <= params.eps + 1e-9
    assert delta[(repaint > 0.5).expand_as(delta)].abs().max() == 0  # repainted area untouched
    trace = out["trace"][0]
    assert trace[-1] < trace[0] and out["loss"][0] < trace[0]


def test_photoguard_diffusion_respects_its_l2_budget(pipes):
    params = resolve_params(
        "photoguard-diffusion", "img2img",
        overrides={"iterations": 1, "grad_reps": 2, "num_inference_steps": 2, "eps": 1.0},
    )
    assert params.norm == "l2" and not params.maximize
    attacker = Attacker(pipes["img2img"], "img2img", params)
    x = images(6)
    out = attacker.attack(x, PROMPTS[:1], ["s6:0"])
    delta = (adversarial_images(out) - x).flatten()
    assert 0.5 < delta.norm() <= params.eps + 1e-9
    assert np.isfinite(out["loss"][0]) and len(out["trace"][0]) == 1


def test_quantize_rounds_inside_the_ball():
    x = torch.full((1, 3, 4, 4), 100 / 255)
    linf = resolve_params("bim", "img2img", "vae.encoder")  # eps 0.1 = 25.5 / 255
    stored = quantize(x, x + 0.1, linf)
    assert stored.max().item() == 125  # 25.5 rounds up to 26 in the naive way; capped at 25
    l2 = resolve_params("photoguard-diffusion", "img2img", overrides={"eps": 0.5})
    delta = torch.full_like(x, 0.5 / (48**0.5))  # exactly on the L2 sphere
    stored = quantize(x, x + delta, l2)
    assert ((stored - 100) / 255).norm() <= 0.5


@pytest.mark.parametrize(
    "method,target,overrides,message",
    [
        ("bim", "vae.encoder", {"eps": 0.0}, "eps must be > 0"),
        ("bim", "vae.encoder", {"eps": -0.1}, "eps must be > 0"),
        ("bim", "vae.encoder", {"iterations": 0}, "iterations"),
        ("bim", "vae.encoder", {"strength": 1.5}, "strength"),
        ("bim", None, {}, "needs --target"),
        ("photoguard-encoder", "vae.encoder", {}, "--target-image"),
        ("pgd", "vae.encoder", {}, "unknown method"),
        ("bim", "vae.encoder", {"target_image": "/no/such.png"}, "target_image"),
        ("bim", "unet.ff", {"feature_rows": "first"}, "feature_rows must be one of uncond, cond"),
        ("bim", "vae.encoder", {"storage": "floor"}, "storage must be one of round, truncate"),
    ],
)
def test_bad_params_are_user_errors(method, target, overrides, message):
    with pytest.raises(LdmdataError, match=message):
        resolve_params(method, "img2img", target, overrides=overrides)


def test_paper_preset_is_the_studys_setting():
    img2img = resolve_params("bim", "img2img", "unet.cross_attn", preset="paper")
    assert (img2img.eps, img2img.iterations, img2img.step_size) == (0.1, 15, 0.01)
    assert (img2img.num_inference_steps, img2img.strength, img2img.guidance_scale) == (15, 0.7, 7.5)
    assert (img2img.seed, img2img.start, img2img.start_std) == (9209, "gaussian", 0.1)
    # the study's hook kept feature_out[0]: the unconditional rows; we store by rounding
    assert (img2img.feature_rows, img2img.storage) == ("uncond", "round")
    # the study's inpainting pipeline had no strength: all 15 steps run
    assert resolve_params("bim", "inpaint", "vae.encoder").strength == 1.0
    with pytest.raises(LdmdataError, match="preset photoguard"):
        resolve_params("bim", "img2img", "vae.encoder", preset="photoguard")
