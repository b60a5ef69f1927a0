"""The reported ``loss`` is the study's loss, computed on the diffusers pipeline itself.

The study hooked one module of the editing pipeline, called the pipeline normally (fixed seed)
once on the clean image and once on the adversarial one, and summed over the module's calls
``mse_loss(feature_out[0], clean_out[0])``. For every named target that output is one tensor,
so ``[0]`` is the batch's first row: under classifier-free guidance the unconditional branch.
Here that is recomputed with a forward hook on the pipeline's own module (not our forward, which
stops early and batches samples) for the image the attack stored, and compared with the
``loss`` column of the attack's output.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torchvision.transforms import ToPILImage

from helpers.attack_data import make_dataset
from ldmdata.attacks.forward import EditBatch
from ldmdata.attacks.methods import quantize
from ldmdata.attacks.params import resolve_params
from ldmdata.attacks.runner import Attacker, RunOptions, attack, to_tensor
from ldmdata.attacks.targets import NAMED_TARGETS
from ldmdata.dataset import iter_rows
from ldmdata.models.editors import load_pipeline
from ldmdata.models.refs import ModelRef

pytestmark = pytest.mark.slow  # end to end: minutes on a 2-core CPU

TASKS = ("img2img", "inpaint")
FAST = {"iterations": 2, "num_inference_steps": 3}
RTOL = 1e-4


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    """Two images with one prompt each: one batch of two pairs (row selection in a batch)."""
    root = tmp_path_factory.mktemp("study_loss")
    for task in TASKS:
        make_dataset(root / task, task, n=2, n_prompts=1)
    return root


@pytest.fixture(scope="module")
def pipes(tiny_dir):
    return {
        task: load_pipeline(ModelRef(f"sd_{task}", str(tiny_dir / f"sd_{task}")), task)
        for task in TASKS
    }


def hooked_outputs(pipe, path: str, image: Image.Image, prompt: str, params,
                   mask: Image.Image | None) -> list[torch.Tensor]:
    """The hooked module's whole output tensor at each call of one normal pipeline call."""
    root, _, rest = path.partition(".")
    module = getattr(pipe, root).get_submodule(rest)
    calls = []

    def hook(module, args, output):
        assert isinstance(output, torch.Tensor)  # so the study's output[0] is the first row
        calls.append(output.detach().clone())

    # The dataset's mask is 255 on the entity; the study inverted it (white = repaint).
    kwargs = {} if mask is None else {"mask_image": ImageOps.invert(mask.convert("L"))}
    handle = module.register_forward_hook(hook)
    try:
        pipe(prompt=prompt, image=image, num_inference_steps=params.num_inference_steps,
             strength=params.strength, guidance_scale=params.guidance_scale, eta=params.eta,
             generator=torch.Generator().manual_seed(params.seed), output_type="pt", **kwargs)
    finally:
        handle.remove()
    return calls


def summed_mse(adv: list[torch.Tensor], clean: list[torch.Tensor], pick) -> float:
    assert len(adv) == len(clean) > 0
    return sum(F.mse_loss(pick(a), pick(c)).item() for a, c in zip(adv, clean, strict=True))


def references(pipe, task, path, row, clean_row, params) -> dict[str, float]:
    """The loss of the stored image, per row choice, from the hooked pipeline."""
    mask = clean_row["mask"] if task == "inpaint" else None
    clean = hooked_outputs(pipe, path, clean_row["image"], row["prompt"], params, mask)
    adv = hooked_outputs(pipe, path, row["image"], row["prompt"], params, mask)
    return {
        "study": summed_mse(adv, clean, lambda out: out[0]),  # the study's feature_out[0]
        "cond": summed_mse(adv, clean, lambda out: out[-1]),
        "both": summed_mse(adv, clean, lambda out: out),
    }


def our_losses(pipe, task, params, rows, clean_rows, choices) -> dict[str, list[float]]:
    """Our objective on the stored images (one batch) for each ``feature_rows`` choice."""
    x = torch.stack([to_tensor(r["image"]) for r in clean_rows])
    adv = torch.stack([to_tensor(r["image"]) for r in rows])
    repaint = None
    if task == "inpaint":
        entity = np.stack([np.array(r["mask"].convert("L")) for r in clean_rows])
        repaint = torch.from_numpy(entity < 128).float()[:, None]
    batch = EditBatch([r["prompt"] for r in rows], [params.seed] * len(rows), repaint)
    losses = {}
    for choice in choices:
        attacker = Attacker(pipe, task, replace(params, feature_rows=choice))
        objective = attacker.objective(batch, x, [r["id"] for r in rows])
        losses[choice] = objective.evaluate(adv).tolist()
    return losses


def close(a: float, b: float) -> bool:
    return a == pytest.approx(b, rel=RTOL)


def attacked(datasets_dir, tmp_path, task, target, overrides, tiny_dir):
    """The attack's stored rows, the clean rows and the params it ran with."""
    out = tmp_path / "adv"
    manifest = attack(datasets_dir / task, out, target=target, overrides=overrides,
                      tiny_dir=tiny_dir, options=RunOptions(threads=1))
    params = resolve_params("bim", task, target, "paper", overrides)
    assert manifest["attack"]["params"] == params.as_dict()  # the default preset is paper
    rows, clean_rows = list(iter_rows(out)), list(iter_rows(datasets_dir / task))
    assert len(rows) == 2  # one batch of two pairs
    return rows, clean_rows, params


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("target", list(NAMED_TARGETS))
def test_reported_loss_is_the_studys_loss_of_the_stored_image(
        datasets_dir, tmp_path, tiny_dir, pipes, task, target):
    rows, clean_rows, params = attacked(datasets_dir, tmp_path, task, target, FAST, tiny_dir)
    assert params.feature_rows == "uncond" and params.guidance_scale > 1
    unet = target.startswith("unet.")
    ours = our_losses(pipes[task], task, params, rows, clean_rows, ["cond", "both"] if unet else [])
    for i, (row, clean_row) in enumerate(zip(rows, clean_rows, strict=True)):
        ref = references(pipes[task], task, NAMED_TARGETS[target][0], row, clean_row, params)
        assert ref["study"] > 0
        assert close(row["loss"], ref["study"]), (row["loss"], ref)
        assert row["loss_first"] == row["loss_trace"][0] > 0
        if unet:  # the guided batch: three losses, each ours where asked for
            assert close(ours["cond"][i], ref["cond"]) and close(ours["both"][i], ref["both"])
            if target == "unet.conv_in":  # sees [latents, latents]: the rows are copies
                assert close(ref["cond"], ref["study"]) and close(ref["both"], ref["study"])
            else:  # past the text conditioning: the rows differ
                assert not close(ref["cond"], ref["study"])
                assert not close(ref["both"], ref["study"])
        else:  # a VAE module sees the image alone: one row
            assert ref["study"] == ref["cond"] == ref["both"]


@pytest.mark.parametrize(
    "target,overrides",
    [("vae.encoder", FAST), ("unet.cross_attn", {**FAST, "guidance_scale": 1.0})],
    ids=["vae", "unet-no-guidance"],
)
def test_with_one_row_per_sample_every_choice_compares_it(
        datasets_dir, tmp_path, tiny_dir, pipes, target, overrides):
    rows, clean_rows, params = attacked(datasets_dir, tmp_path, "img2img", target, overrides,
                                        tiny_dir)
    choices = ["uncond", "cond", "both"]
    ours = our_losses(pipes["img2img"], "img2img", params, rows, clean_rows, choices)
    for i, (row, clean_row) in enumerate(zip(rows, clean_rows, strict=True)):
        ref = references(pipes["img2img"], "img2img", NAMED_TARGETS[target][0], row, clean_row,
                         params)
        assert ref["study"] == ref["cond"] == ref["both"] > 0  # the pipeline's batch: one row
        assert close(row["loss"], ref["study"])
        assert all(ours[choice][i] == ours["uncond"][i] for choice in choices)
        assert close(ours["uncond"][i], ref["study"])


def test_truncating_storage_is_the_studys_to_pil_image():
    params = resolve_params("bim", "img2img", "vae.encoder", overrides={"storage": "truncate"})
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(30, 226, (2, 3, 8, 8), generator=gen).float() / 255
    x_adv = x + (torch.rand(x.shape, generator=gen) * 2 - 1) * params.eps
    x_adv[0, 0, 0, :2] = x[0, 0, 0, :2] + torch.tensor([-params.eps, params.eps])
    stored = quantize(x, x_adv, params)
    for i in range(2):  # torchvision's ToPILImage on the float tensor, as the study stored it
        expected = np.array(ToPILImage()(x_adv[i])).transpose(2, 0, 1)
        np.testing.assert_array_equal(stored[i].numpy(), expected)
    delta = stored - x * 255
    assert round(delta.min().item()) == -26 and round(delta.max().item()) == 25  # past eps
    rounded = quantize(x, x_adv, replace(params, storage="round"))
    assert (rounded - x * 255).abs().max() <= 25
    assert -0.7 < (stored - rounded).mean() < -0.3  # truncation's downward bias


def test_storage_is_recorded_and_truncation_can_leave_the_ball(datasets_dir, tmp_path, tiny_dir):
    outs = {}
    for storage in ("round", "truncate"):
        out = tmp_path / storage
        attack(datasets_dir / "img2img", out, target="vae.encoder",
               overrides={**FAST, "storage": storage}, tiny_dir=tiny_dir,
               options=RunOptions(threads=1))
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["attack"]["params"]["storage"] == storage
        assert manifest["config"]["attack"]["storage"] == storage
        outs[storage] = list(iter_rows(out))
    assert max(r["linf"] for r in outs["round"]) <= 0.1
    assert max(r["linf"] for r in outs["truncate"]) == pytest.approx(26 / 255)
