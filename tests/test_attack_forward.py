"""The differentiable editing forward: equal to the diffusers pipeline, truncated to the loss."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.attack_data import PROMPTS, scene
from ldmdata.attacks.forward import (
    EditBatch,
    EditForward,
    EditSettings,
    FeatureRecorder,
    plan_stop,
)
from ldmdata.attacks.runner import to_tensor
from ldmdata.attacks.targets import NAMED_TARGETS, resolve_target
from ldmdata.errors import LdmdataError


def _inputs(seed: int, task: str):
    """(PIL image, pipeline kwargs, pixels, repaint tensor) for one scene."""
    image, mask, _ = scene(seed, 64)
    if task == "img2img":
        return image, {}, to_tensor(image)[None], None
    keep = np.array(mask) > 127  # the entity is kept, the rest repainted (the study's setting)
    repaint_image = Image.fromarray(np.where(keep, 0, 255).astype(np.uint8))
    repaint = torch.from_numpy(~keep).float()[None, None]
    return image, {"mask_image": repaint_image}, to_tensor(image)[None], repaint


def _pipeline_output(pipe, image, kwargs, settings: EditSettings, prompt: str, seed: int):
    return pipe(
        prompt=prompt, image=image, num_inference_steps=settings.num_inference_steps,
        strength=settings.strength, guidance_scale=settings.guidance_scale, eta=settings.eta,
        generator=torch.Generator().manual_seed(seed), output_type="pt", **kwargs,
    ).images


@pytest.mark.parametrize(
    "task,strength,eta",
    [("img2img", 0.7, 0.0), ("inpaint", 1.0, 1.0), ("inpaint", 0.6, 0.0)],
    ids=["img2img-pndm", "inpaint-ddim-eta1", "inpaint-strength0.6"],
)
def test_forward_reproduces_the_pipeline(pipes, task, strength, eta):
    pipe = pipes[task]
    settings = EditSettings(num_inference_steps=4, strength=strength, eta=eta)
    image, kwargs, x, repaint = _inputs(3, task)
    expected = _pipeline_output(pipe, image, kwargs, settings, PROMPTS[0], seed=9209)
    forward = EditForward(pipe, task, settings)
    with torch.no_grad():
        ours = forward.postprocess(forward.run(x, EditBatch([PROMPTS[0]], [9209], repaint)))
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)
    other_seed = _pipeline_output(pipe, image, kwargs, settings, PROMPTS[0], seed=1)
    assert (ours - other_seed).abs().max() > 1e-3  # the comparison can tell outputs apart


def test_a_batch_equals_its_samples_run_one_by_one(pipes):
    pipe = pipes["inpaint"]
    forward = EditForward(pipe, "inpaint", EditSettings(num_inference_steps=3, strength=1.0))
    samples = [_inputs(seed, "inpaint") for seed in (1, 2)]
    x = torch.cat([s[2] for s in samples])
    repaint = torch.cat([s[3] for s in samples])
    with torch.no_grad():
        together = forward.run(x, EditBatch(PROMPTS[:2], [5, 6], repaint))
        alone = [
            forward.run(s[2], EditBatch([PROMPTS[i]], [5 + i], s[3]))
            for i, s in enumerate(samples)
        ]
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-4, rtol=0)


def _calls(module: torch.nn.Module, counter: list) -> torch.utils.hooks.RemovableHandle:
    return module.register_forward_pre_hook(lambda *args: counter.append(1))


@pytest.mark.parametrize(
    "target,unet_runs,decoder_runs",
    [("vae.encoder", False, False), ("vae.quant_conv", False, False),
     ("unet.self_attn", True, False), ("unet.resnet", True, False),
     ("vae.post_quant_conv", True, False), ("vae.decoder", True, True)],
)
def test_forward_stops_after_the_last_call_of_the_target(pipes, target, unet_runs, decoder_runs):
    pipe = pipes["img2img"]
    forward = EditForward(pipe, "img2img", EditSettings(num_inference_steps=4, strength=0.75))
    _, module = resolve_target(pipe, target)
    stop = plan_stop(forward, module, target)
    unet_calls, decoder_calls = [], []
    handles = [_calls(pipe.unet, unet_calls), _calls(pipe.vae.decoder, decoder_calls)]
    try:
        with torch.no_grad(), FeatureRecorder(module, stop) as recorder:
            result = forward.run(_inputs(0, "img2img")[2], EditBatch(["x"], [0]), recorder)
    finally:
        for handle in handles:
            handle.remove()
    assert result is None  # stopped: nothing past the target ran to the end
    assert len(unet_calls) == (len(forward.timesteps) if unet_runs else 0)
    assert len(decoder_calls) == int(decoder_runs)
    expected = len(forward.timesteps) if target.startswith("unet") else 1
    assert len(recorder.outputs) == expected


def test_text_encoder_targets_are_refused(pipes):
    pipe = pipes["img2img"]
    forward = EditForward(pipe, "img2img", EditSettings(num_inference_steps=2))
    _, module = resolve_target(pipe, "text_encoder.encoder")
    with pytest.raises(LdmdataError, match="does not depend on the image"):
        plan_stop(forward, module, "text_encoder.encoder")


def test_wrong_unet_for_the_task_is_refused(pipes):
    with pytest.raises(LdmdataError, match="9 input channels"):
        EditForward(pipes["img2img"], "inpaint", EditSettings())


def test_only_unet_modules_under_guidance_see_the_guided_batch(pipes):
    pipe = pipes["img2img"]
    guided = EditForward(pipe, "img2img", EditSettings(num_inference_steps=2))
    unguided = EditForward(pipe, "img2img", EditSettings(num_inference_steps=2, guidance_scale=1))
    for name in NAMED_TARGETS:
        _, module = resolve_target(pipe, name)
        assert guided.row_blocks(module) == (("uncond", "cond") if name.startswith("unet.")
                                             else ())
        assert unguided.row_blocks(module) == ()
