"""The x4 upscaler's and InstructPix2Pix's differentiable forwards: equal to their pipelines."""

import pytest
import torch

from helpers.attack_data import PROMPTS, scene
from ldmdata.attacks.forward import EditBatch, EditSettings, FeatureRecorder, plan_stop
from ldmdata.attacks.forward_editors import Pix2PixForward, UpscaleForward, make_forward
from ldmdata.attacks.runner import to_tensor
from ldmdata.attacks.targets import resolve_target
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import load_pipeline
from ldmdata.models.refs import ModelRef


@pytest.fixture(scope="module")
def pipes(tiny_dir):
    return {kind: load_pipeline(ModelRef(f"sd_{kind}", str(tiny_dir / f"sd_{kind}")), kind)
            for kind in ("upscale", "ip2p")}


def _image(seed: int, kind: str):
    """A scene: 16 px LR for the upscaler, 64 px for InstructPix2Pix."""
    image = scene(seed, 64)[0]
    return image.resize((16, 16)) if kind == "upscale" else image


def _pipeline(pipe, kind, images, prompts, settings: EditSettings, seeds):
    extra = ({"noise_level": settings.noise_level} if kind == "upscale"
             else {"image_guidance_scale": settings.image_guidance_scale})
    return pipe(
        prompt=list(prompts), image=list(images), num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale, eta=settings.eta, output_type="pt",
        generator=[torch.Generator().manual_seed(s) for s in seeds], **extra,
    ).images


CASES = [
    ("upscale", EditSettings(num_inference_steps=2, eta=0.0, noise_level=20)),
    ("upscale", EditSettings(num_inference_steps=2, eta=1.0, noise_level=100)),
    ("upscale", EditSettings(num_inference_steps=2, guidance_scale=1.0)),
    ("ip2p", EditSettings(num_inference_steps=2, image_guidance_scale=1.5)),
    ("ip2p", EditSettings(num_inference_steps=2, image_guidance_scale=0.5)),  # no guidance
]


@pytest.mark.parametrize("kind,settings", CASES,
                         ids=["up-ddim", "up-eta1-level100", "up-noguide", "ip2p", "ip2p-noguide"])
def test_forward_reproduces_the_pipeline_per_sample_seeds(pipes, kind, settings):
    pipe = pipes[kind]
    images = [_image(s, kind) for s in (1, 2)]
    seeds = [9209, 5]
    expected = _pipeline(pipe, kind, images, PROMPTS[:2], settings, seeds)
    forward = make_forward(pipe, kind, settings)
    x = torch.stack([to_tensor(image) for image in images])
    with torch.no_grad():
        ours = forward.postprocess(forward.run(x, EditBatch(PROMPTS[:2], seeds)))
    assert ours.shape == expected.shape == (2, 3, 64, 64)
    assert forward.output_size(x) == (64, 64)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)
    other = _pipeline(pipe, kind, images, PROMPTS[:2], settings, [1, 2])
    assert (ours - other).abs().max() > 1e-3  # the comparison can tell outputs apart


def _calls(module: torch.nn.Module, counter: list):
    return module.register_forward_pre_hook(lambda *args: counter.append(1))


@pytest.mark.parametrize(
    "kind,target,stage,decoder_runs",
    [("upscale", "unet.resnet", "last_step", False), ("upscale", "unet.cross_attn", "last_step",
                                                      False),
     ("upscale", "vae.decoder", "decode", True), ("ip2p", "vae.encoder", "encode", False),
     ("ip2p", "unet.self_attn", "last_step", False), ("ip2p", "vae.decoder", "decode", True)],
)
def test_truncation_stops_after_the_targets_last_call(pipes, kind, target, stage, decoder_runs):
    pipe = pipes[kind]
    forward = make_forward(pipe, kind, EditSettings(num_inference_steps=3))
    _, module = resolve_target(pipe, target)
    last, calls = plan_stop(forward, module, target)
    n = len(forward.timesteps)
    assert last == {"encode": 0, "last_step": n, "decode": n + 1}[stage]
    unet_calls, decoder_calls = [], []
    handles = [_calls(pipe.unet, unet_calls), _calls(pipe.vae.decoder, decoder_calls)]
    try:
        with torch.no_grad(), FeatureRecorder(module, (last, calls)) as recorder:
            x = to_tensor(_image(0, kind))[None]
            result = forward.run(x, EditBatch(["x"], [0]), recorder)
    finally:
        for handle in handles:
            handle.remove()
    assert result is None
    assert len(unet_calls) == (0 if stage == "encode" else n)
    assert len(decoder_calls) == int(decoder_runs)
    assert len(recorder.outputs) == (n if target.startswith("unet") else 1)


def test_the_upscaler_never_encodes_the_image(pipes):
    forward = make_forward(pipes["upscale"], "upscale", EditSettings(num_inference_steps=2))
    _, module = resolve_target(pipes["upscale"], "vae.encoder")
    with pytest.raises(LdmdataError, match="not on the image's path through the upscale"):
        plan_stop(forward, module, "vae.encoder")


def test_wrong_model_for_the_editor_is_refused(pipes):
    with pytest.raises(LdmdataError, match="needs a UNet with 7 input channels; this one has 8"):
        UpscaleForward(pipes["ip2p"], EditSettings())
    with pytest.raises(LdmdataError, match="8 input channels"):
        Pix2PixForward(pipes["upscale"], EditSettings())
    with pytest.raises(LdmdataError, match=r"noise_level must be in \[0, 350\]"):
        UpscaleForward(pipes["upscale"], EditSettings(noise_level=351))
