"""The field's protections on the tiny models: budgets, direction, beating noise, SDS's
gradient, DiffusionGuard's seeded masks, presets and bad params."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor

from helpers.attack_data import PROMPTS, adversarial_images, images, repaint_masks
from ldmdata.attacks.forward import EditBatch
from ldmdata.attacks.methods import derive_seed, pattern_image
from ldmdata.attacks.params import DEFAULT_PRESETS, METHODS, PRESETS, resolve_params
from ldmdata.attacks.runner import OBJECTIVES, Attacker
from ldmdata.errors import LdmdataError

KEYS = ["a:0", "b:1"]
# Few iterations, one small timestep (the loss then depends on the image the most), two draws.
TEST = {"iterations": 5, "step_size": 0.008, "t_min": 20, "t_max": 20, "grad_reps": 2}
CASES = [("img2img", m) for m in ("advdm", "mist")] + [
    ("inpaint", m) for m in ("advdm", "mist", "diffusionguard")]


def _noisy(x, linf, region, seed=0):
    """``x`` plus Gaussian noise scaled to each sample's L-inf (in the region), stored 8-bit."""
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    noise = noise / noise.abs().amax(dim=(1, 2, 3), keepdim=True)
    noise = noise * torch.tensor(linf).view(-1, 1, 1, 1)
    if region is not None:
        noise = noise * region
    return torch.round((x + noise).clamp(0, 1) * 255) / 255


@pytest.mark.parametrize("task,method", CASES)
def test_protection_stays_in_budget_moves_its_loss_and_beats_noise(pipes, task, method):
    overrides = {k: v for k, v in TEST.items() if method != "diffusionguard" or k[0] != "t"}
    params = resolve_params(method, task, overrides=overrides)
    attacker = Attacker(pipes[task], task, params)
    x = images(2, 3)
    repaint = repaint_masks(2, 3) if task == "inpaint" else None
    out = attacker.attack(x, PROMPTS[:2], KEYS, repaint)
    adv = adversarial_images(out)
    assert out["images"].dtype == np.uint8  # stored 8-bit: within [0, 1] by construction
    assert (adv - x).abs().max() <= params.eps + 1e-6 and max(out["linf"]) <= params.eps + 1e-6
    assert min(out["linf"]) > 0 and all(len(t) == params.iterations for t in out["trace"])
    region = None
    if task == "inpaint":
        assert params.mask_aware
        region = (repaint < 0.5).float()
        assert (adv - x)[(region == 0).expand_as(adv)].abs().max() == 0  # repainted: untouched
    objective = attacker.objective(EditBatch(PROMPTS[:2], [params.seed] * 2, repaint), x, KEYS)
    sign = 1 if params.maximize else -1
    clean = objective.evaluate(x)
    moved = sign * (torch.tensor(out["loss"]) - clean)
    noise = sign * (objective.evaluate(_noisy(x, out["linf"], region)) - clean)
    assert (moved > 0).all(), (moved, noise)  # the right way, from the same draws
    assert (moved > noise).all(), (moved, noise)  # more than noise of the same L-inf


def _sds_terms(pipe, x, params, keys):
    """``(eps_theta(z_t) - eps, z_0)`` from diffusers' components with the objective's seeded
    draws of iteration 0 (posterior noise, t, noise); ``z_0`` keeps its graph to ``x``."""
    gens = [torch.Generator().manual_seed(derive_seed(params.seed, "draw", k, 0, 0))
            for k in keys]
    z0 = pipe.vae.encode(2 * x - 1).latent_dist.sample(generator=gens)
    z0 = z0 * pipe.vae.config.scaling_factor
    t = torch.cat([torch.randint(params.t_min, params.t_max + 1, (1,), generator=g)
                   for g in gens])
    noise = randn_tensor(z0.shape, gens, z0.device, z0.dtype)
    embeds = torch.cat([pipe.encode_prompt(p, z0.device, 1, False)[0] for p in PROMPTS[:2]])
    with torch.no_grad():
        z_t = DDPMScheduler.from_config(pipe.scheduler.config).add_noise(z0, noise, t)
        residual = pipe.unet(z_t, t, encoder_hidden_states=embeds).sample - noise
    return residual, z0


def test_sds_gradient_is_score_distillation_without_the_unet_backward(pipes):
    pipe = pipes["img2img"]
    x = images(4, 5)
    batch = EditBatch(PROMPTS[:2], [9209] * 2)
    backward_calls, grad_outputs = [], []
    hooks = [pipe.unet.register_full_backward_hook(lambda *a: backward_calls.append(1)),
             pipe.unet.register_forward_hook(
                 lambda m, a, out: grad_outputs.append(out[0].requires_grad))]
    try:
        grads = {}
        for method in ("sds-plus", "advdm"):
            params = resolve_params(method, "img2img", overrides={"t_min": 300, "t_max": 300})
            objective = Attacker(pipe, "img2img", params).objective(batch, x, KEYS)
            x_adv = x.clone().requires_grad_(True)
            (grads[method],) = torch.autograd.grad(objective(x_adv, 0, 0).sum(), x_adv)
            grads[method, "backward"] = len(backward_calls)
            grads[method, "output_grad"] = grad_outputs[-1]
    finally:
        for hook in hooks:
            hook.remove()
    assert grads["sds-plus", "backward"] == 0 and not grads["sds-plus", "output_grad"]
    assert grads["advdm", "backward"] == 1 and grads["advdm", "output_grad"]
    x_ref = x.clone().requires_grad_(True)
    residual, z0 = _sds_terms(pipe, x_ref, params, KEYS)
    (reference,) = torch.autograd.grad((residual * z0).sum(), x_ref)
    torch.testing.assert_close(grads["sds-plus"], reference, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(grads["advdm"], reference, rtol=1e-2)  # the Jacobian matters


@pytest.mark.parametrize("method", ["sds-plus", "sds-minus", "sdst"])
def test_one_sds_step_moves_its_surrogate_more_than_noise(pipes, method):
    """SDS follows no loss's gradient; one step (the evaluation's own draws) must move the
    surrogate it is built on (SDST: plus the textural loss) the right way, more than noise of
    the same L-inf."""
    pipe = pipes["img2img"]
    params = resolve_params(method, "img2img", overrides={"iterations": 1})
    x = images(6, 7)
    out = Attacker(pipe, "img2img", params).attack(x, PROMPTS[:2], KEYS)
    adv = adversarial_images(out)
    assert (adv - x).abs().max() <= params.eps + 1e-6
    assert out["linf"] == pytest.approx([1 / 255] * 2, rel=1e-4)  # one step of the preset

    residual, z_clean = _sds_terms(pipe, x, params, KEYS)
    weight, texture = 1.0, (lambda z: 0)
    if method == "sdst":
        with torch.no_grad():
            target = pipe.vae.encode(2 * pattern_image((64, 64)) - 1).latent_dist.mean
        target = target * pipe.vae.config.scaling_factor
        weight = params.semantic_weight
        texture = lambda z: (z - target).pow(2).flatten(1).sum(dim=1)  # noqa: E731

    def surrogate_change(x_new):  # sum(residual * z_0), the residual held at the clean image
        with torch.no_grad():
            z_new = _sds_terms(pipe, x_new, params, KEYS)[1]
            z_old = z_clean.detach()
            linear = (residual * (z_new - z_old)).flatten(1).sum(dim=1)
            return weight * linear + texture(z_new) - texture(z_old)

    sign = 1 if params.maximize else -1
    moved = sign * surrogate_change(adv)
    noise = sign * surrogate_change(_noisy(x, out["linf"], None))
    assert (moved > 0).all() and (moved > noise.abs()).all(), (moved, noise)


def test_diffusionguard_masks_are_seeded_and_stay_inside_the_kept_region(pipes):
    params = resolve_params("diffusionguard", "inpaint", overrides={"iterations": 2})
    assert params.mask_shrink > 0
    attacker = Attacker(pipes["inpaint"], "inpaint", params)
    x, repaint = images(8, 9), repaint_masks(8, 9)
    objective = attacker.objective(EditBatch(PROMPTS[:2], [params.seed] * 2, repaint), x, KEYS)
    masks = {i: objective.augmented_repaint(repaint, objective.draws(i, 0)) for i in range(6)}
    again = objective.augmented_repaint(repaint, objective.draws(3, 0))
    assert torch.equal(masks[3], again)  # the same seed, iteration and repeat: the same mask
    assert len({m.numpy().tobytes() for m in masks.values()}) > 1  # re-drawn every iteration
    for mask in masks.values():
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert (mask >= repaint).all()  # the kept region only shrinks
    alone = Attacker(pipes["inpaint"], "inpaint", params).objective(
        EditBatch(PROMPTS[1:2], [params.seed], repaint[1:]), x[1:], KEYS[1:])
    assert torch.equal(alone.augmented_repaint(repaint[1:], alone.draws(3, 0)), masks[3][1:])
    out_a = attacker.attack(x, PROMPTS[:2], KEYS, repaint)
    out_b = Attacker(pipes["inpaint"], "inpaint", params).attack(x, PROMPTS[:2], KEYS, repaint)
    assert np.array_equal(out_a["images"], out_b["images"])


def test_diffusionguard_refuses_img2img_in_one_line():
    with pytest.raises(LdmdataError, match="masked-image conditioning; a img2img dataset"):
        resolve_params("diffusionguard", "img2img")


def test_every_method_has_an_objective_and_a_preset():
    assert set(OBJECTIVES) == set(METHODS)
    assert set(DEFAULT_PRESETS) == set(METHODS) and set(DEFAULT_PRESETS.values()) <= set(PRESETS)


def test_presets_are_the_published_defaults_in_unit_pixels():
    for method in ("advdm", "mist", "sds-plus", "sds-minus", "sdst"):
        p = resolve_params(method, "inpaint")
        assert (p.eps, p.step_size, p.iterations) == (16 / 255, 1 / 255, 100)  # 0-255: 16, 1
        assert (p.t_min, p.t_max, p.grad_reps, p.norm) == (0, 999, 1, "linf")
        assert p.mask_aware and p.attack_prompt is None and not p.step_decay
    assert resolve_params("advdm", "img2img").start == "uniform"  # advertorch's rand_init
    mist = resolve_params("mist", "img2img")
    assert (mist.semantic_weight, mist.target_image, mist.maximize) == (1e4, "pattern", True)
    assert resolve_params("sds-plus", "img2img").start == "clean"
    assert resolve_params("sds-plus", "img2img").maximize
    assert not resolve_params("sds-minus", "img2img").maximize
    sdst = resolve_params("sdst", "img2img")
    assert (sdst.semantic_weight, sdst.target_image, sdst.maximize) == (5.0, "pattern", False)
    guard = resolve_params("diffusionguard", "inpaint")
    assert (guard.eps, guard.step_size, guard.iterations) == (8 / 255, 0.5 / 255, 800)
    assert (guard.num_inference_steps, guard.strength, guard.attack_prompt) == (4, 1.0, "")
    assert guard.start == "clean" and guard.mask_aware and guard.maximize


@pytest.mark.parametrize(
    "method,preset,overrides,message",
    [
        ("advdm", None, {"t_min": 500, "t_max": 100}, "need 0 <= t_min <= t_max"),
        ("advdm", None, {"t_min": -1}, "need 0 <= t_min <= t_max"),
        ("mist", None, {"semantic_weight": -1.0}, "semantic_weight must be >= 0"),
        ("diffusionguard", None, {"mask_shrink": 1.5}, r"mask_shrink must be in \[0, 1\]"),
        ("mist", None, {"target_image": "/no/such.png"}, "target_image"),
        ("sds-plus", "photoguard", {}, "preset photoguard is for photoguard-encoder"),
        ("sdst", "mist", {}, "--method sdst takes --preset paper or sds"),
        ("advdm", None, {"rate": 3}, "unknown attack param"),
    ],
)
def test_bad_protection_params_are_user_errors(method, preset, overrides, message):
    with pytest.raises(LdmdataError, match=message):
        resolve_params(method, "inpaint", preset=preset, overrides=overrides)


def test_a_t_max_past_the_models_schedule_is_a_user_error(pipes):
    params = resolve_params("advdm", "img2img", overrides={"t_max": 5000})
    with pytest.raises(LdmdataError, match="t_max 5000 is past this model's 1000 timesteps"):
        Attacker(pipes["img2img"], "img2img", params)
