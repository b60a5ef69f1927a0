"""``ldmdata edit``: the real diffusers pipelines, provenance, transfer, resume, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.attack_data import make_dataset
from helpers.cli import CliRunner, command
from helpers.eval_data import FAST, make_attack_set, make_sr_dataset
from ldmdata.dataset import iter_rows, read_manifest, verify
from ldmdata.edit import EditOptions, edit, resolve_edit_params
from ldmdata.edit.plan import attack_names, edit_from_params
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import load_pipeline
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import dvc_hash

app = command("edit")
runner = CliRunner()
CPU = EditOptions(batch_size=4, device="cpu")


def test_an_edit_is_the_diffusers_pipeline_called_directly(world, tmp_path, tiny_dir):
    edit(world["dataset"], tmp_path / "one", overrides=FAST, tiny_dir=tiny_dir,
         options=EditOptions(batch_size=1, limit=1, prompts=[1], device="cpu"))
    (row,) = list(iter_rows(tmp_path / "one"))
    source = next(iter_rows(world["dataset"]))
    pipe = load_pipeline(ModelRef("sd_img2img", str(tiny_dir / "sd_img2img")), "img2img")
    direct = pipe(prompt=source["prompts"][1], image=source["image"], strength=0.7,
                  num_inference_steps=3, guidance_scale=7.5,
                  generator=torch.Generator().manual_seed(9209)).images[0]
    assert row["image"].tobytes() == direct.tobytes()
    assert row["id"] == "s0-p1" and row["prompt"] == source["prompts"][1]
    assert row["input_kind"] == "clean" and row["attack_prompt_index"] is None
    # In a batch of 4 each sample keeps its own generator; batched kernels round differently
    # by at most one 8-bit level.
    rows = list(iter_rows(world["clean_edits"]))
    assert [r["id"] for r in rows] == ["s0-p0", "s0-p1", "s1-p0", "s1-p1", "s2-p0", "s2-p1"]
    batched = np.asarray(rows[1]["image"], dtype=int)
    assert np.abs(batched - np.asarray(direct, dtype=int)).max() <= 1


def test_inpainting_repaints_the_background_like_the_study(tmp_path, tiny_dir):
    dataset = make_dataset(tmp_path / "ds", "inpaint", n=1, size=64, n_prompts=1)
    manifest = edit(dataset, tmp_path / "out", overrides=FAST, tiny_dir=tiny_dir,
                    options=EditOptions(batch_size=1, device="cpu"))
    assert manifest["params"]["strength"] == 1.0 and manifest["params"]["invert_mask"] is True
    source = next(iter_rows(dataset))
    pipe = load_pipeline(ModelRef("sd_inpaint", str(tiny_dir / "sd_inpaint")), "inpaint")
    background = Image.eval(source["mask"].convert("L"), lambda v: 255 - v)
    direct = pipe(prompt=source["prompts"][0], image=source["image"], mask_image=background,
                  height=64, width=64, num_inference_steps=3, guidance_scale=7.5,
                  generator=torch.Generator().manual_seed(9209)).images[0]
    edited = next(iter_rows(tmp_path / "out"))["image"]
    assert edited.size == (64, 64) and edited.tobytes() == direct.tobytes()


def test_adversarial_edits_name_every_input_hash_and_pair_with_clean(world, tiny_dir):
    manifest = read_manifest(world["adv_edits"])
    assert manifest["kind"] == "edit" and manifest["input_kind"] == "adversarial"
    assert manifest["inputs"]["dataset"]["dvc_hash"] == dvc_hash(world["dataset"])
    assert manifest["inputs"]["images"]["dvc_hash"] == dvc_hash(world["adversarial"])
    assert manifest["inputs"]["images"]["role"] == "adversarial"
    assert manifest["model"]["revision"].startswith("tiny-sha256:")
    assert manifest["params"] == {"num_inference_steps": 3, "strength": 0.7,
                                  "guidance_scale": 7.5, "eta": 0.0, "seed": 9209}
    assert manifest["attack"]["target"] == "vae.encoder"
    assert manifest["transfer"] == {"model": False, "prompt": False}
    assert verify(world["adv_edits"]) == []
    rows = list(iter_rows(world["adv_edits"]))
    assert [(r["id"], r["prompt_index"], r["attack_prompt_index"]) for r in rows[:2]] == [
        ("s0-a0-p0", 0, 0), ("s0-a1-p1", 1, 1)]
    assert {r["input_id"] for r in rows} == {f"s{i}-p{k}" for i in range(3) for k in range(2)}
    clean = {(r["sample_id"], r["prompt_index"]) for r in iter_rows(world["clean_edits"])}
    assert {(r["sample_id"], r["prompt_index"]) for r in rows} == clean


def test_prompt_and_model_transfer_are_configuration(world, tmp_path, tiny_dir):
    prompt = edit(world["dataset"], tmp_path / "p", images_dir=world["adversarial"],
                  overrides=FAST, tiny_dir=tiny_dir,
                  options=EditOptions(prompt_index=0, prompts=[1], device="cpu"))
    assert prompt["transfer"] == {"model": False, "prompt": True}
    rows = list(iter_rows(tmp_path / "p"))
    assert [(r["attack_prompt_index"], r["prompt_index"]) for r in rows] == [(1, 0)] * 3
    model = edit(world["dataset"], tmp_path / "m", images_dir=world["adversarial"],
                 editor="ip2p", overrides=FAST, tiny_dir=tiny_dir,
                 options=EditOptions(limit=1, device="cpu"))
    assert model["transfer"] == {"model": True, "prompt": False}
    assert model["editor"] == "ip2p" and model["params"]["image_guidance_scale"] == 1.5
    assert model["n"] == 2


def test_sr_datasets_are_upscaled_x4_by_the_upscaler(tmp_path, tiny_dir):
    dataset = make_sr_dataset(tmp_path / "sr", n=1)
    manifest = edit(dataset, tmp_path / "out", overrides=FAST, tiny_dir=tiny_dir,
                    options=EditOptions(batch_size=1, prompts=[0], device="cpu"))
    assert manifest["editor"] == "upscale" and manifest["params"]["noise_level"] == 20
    source = next(iter_rows(dataset))
    pipe = load_pipeline(ModelRef("sd_upscale", str(tiny_dir / "sd_upscale")), "upscale")
    direct = pipe(prompt=source["prompts"][0], image=source["lr"], num_inference_steps=3,
                  guidance_scale=7.5, noise_level=20,
                  generator=torch.Generator().manual_seed(9209)).images[0]
    edited = next(iter_rows(tmp_path / "out"))["image"]
    assert edited.size == (64, 64) and edited.tobytes() == direct.tobytes()


def test_an_interrupted_edit_resumes_to_the_same_hash(world, tmp_path, tiny_dir):
    whole = edit(world["dataset"], tmp_path / "whole", overrides=FAST, tiny_dir=tiny_dir,
                 options=EditOptions(batch_size=3, shard_size=2, device="cpu"))

    def stop(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        edit(world["dataset"], tmp_path / "cut", overrides=FAST, tiny_dir=tiny_dir,
             options=EditOptions(batch_size=3, shard_size=2, device="cpu"), progress=stop)
    assert not (tmp_path / "cut" / "manifest.json").exists()
    resumed = edit(world["dataset"], tmp_path / "cut", overrides=FAST, tiny_dir=tiny_dir,
                   options=EditOptions(batch_size=3, shard_size=2, device="cpu"))
    assert resumed["content_hash"] == whole["content_hash"] and len(resumed["shards"]) == 3


def test_images_from_another_dataset_are_refused(world, tmp_path, tiny_dir):
    other = make_dataset(tmp_path / "other", "img2img", n=2, size=64, n_prompts=1)
    with pytest.raises(LdmdataError, match="was made from a dataset with DVC hash"):
        edit(other, tmp_path / "out", images_dir=world["adversarial"], tiny_dir=tiny_dir,
             options=CPU)


@pytest.mark.parametrize("overrides, message", [
    ({"num_inference_steps": 0}, "num_inference_steps must be an integer >= 1"),
    ({"strength": 1.5}, r"strength must be in \(0, 1\]"),
    ({"num_inference_steps": 2, "strength": 0.2}, "leaves no denoising step"),
    ({"steps": 3}, "unknown edit param"),
])
def test_bad_edit_params_are_one_line_errors(overrides, message):
    with pytest.raises(LdmdataError, match=message):
        resolve_edit_params("img2img", "paper", overrides)


def test_the_paper_preset_is_the_studys_setting():
    p = resolve_edit_params("img2img")
    assert (p.num_inference_steps, p.strength, p.guidance_scale, p.seed) == (100, 0.7, 7.5, 9209)
    assert resolve_edit_params("inpaint").strength == 1.0


def test_cli_edits_and_bad_options_exit_2_with_one_line(world, tmp_path, tiny_dir):
    out = tmp_path / "cli"
    ok = runner.invoke(app, [str(world["dataset"]), "--out", str(out), "--images",
                             str(world["adversarial"]), "--steps", "3", "--limit", "1",
                             "--tiny-dir", str(tiny_dir), "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    assert "2 edits (img2img, adversarial input)" in ok.output
    for args, message in [
        (["--strength", "2"], "error: strength must be in (0, 1]"),
        (["--editor", "inpaint"], "error: editor inpaint cannot edit a img2img dataset"),
        (["--prompt-index", "x"], "error: --prompt-index takes 'same' or an index"),
        (["--defence", "jpeg:quality=500"], "error: defence jpeg: quality must be an integer"),
    ]:
        bad = runner.invoke(app, [str(world["dataset"]), "--out", str(tmp_path / "bad"),
                                  "--tiny-dir", str(tiny_dir), *args])
        assert bad.exit_code == 2, bad.output
        assert bad.output.strip().splitlines() == [bad.output.strip()]
        assert bad.output.startswith(message), bad.output


def test_the_stage_runs_default_transfer_and_defence_runs(world, tmp_path, tiny_dir):
    attacks = tmp_path / "attacks"
    make_attack_set(world["dataset"], attacks / "vae.encoder", tiny_dir)
    make_attack_set(world["dataset"], attacks / "unet.ff", tiny_dir, target="unet.ff")
    params = {
        "models": {"profile": "tiny"},
        "attack": {"targets": ["vae.encoder", "unet.ff"]},
        "edit": {"num_inference_steps": 2, "limit": 1, "device": "cpu", "runs": {
            "ip2p": {"editor": "ip2p", "attacks": ["vae.encoder"]},
            "p0": {"prompt_index": 0, "attacks": ["unet.ff"]},
            "jpeg": {"defence": "jpeg:quality=50", "attacks": ["vae.encoder"]},
            "other_task": {"tasks": ["inpaint"]},
        }},
    }
    out = tmp_path / "edits"
    (out / "gone" / "clean").mkdir(parents=True)
    plan = edit_from_params("img2img", world["dataset"], attacks, out, params, tiny_dir)
    assert plan["runs"] == {
        "default": {"reference": "default/clean",
                    "sets": {"vae.encoder": "default/vae.encoder", "unet.ff": "default/unet.ff"}},
        "ip2p": {"reference": "ip2p/clean", "sets": {"vae.encoder": "ip2p/vae.encoder"}},
        "p0": {"reference": "default/clean", "sets": {"unet.ff": "p0/unet.ff"}},
        "jpeg": {"reference": "default/clean", "sets": {"vae.encoder": "jpeg/vae.encoder"}},
    }
    assert json.loads((out / "plan.json").read_text()) == plan
    assert sorted(p.name for p in out.iterdir()) == ["default", "ip2p", "jpeg", "p0", "plan.json"]
    jpeg = read_manifest(out / "jpeg" / "vae.encoder")
    assert jpeg["input_kind"] == "defended"
    assert jpeg["defence"]["params"] == {"quality": 50}
    params["edit"]["runs"]["bad"] = {"editor": "upscale"}
    with pytest.raises(LdmdataError, match="editor upscale cannot edit a img2img dataset"):
        edit_from_params("img2img", world["dataset"], attacks, out, params, tiny_dir)
    params["edit"]["runs"]["bad"] = {"attacks": ["vae.decoder"]}
    with pytest.raises(LdmdataError, match="vae.decoder are not in attack.targets"):
        edit_from_params("img2img", world["dataset"], attacks, out, params, tiny_dir)


def test_the_edit_stage_takes_every_attack_list_of_its_task():
    attack = {"targets": ["vae.encoder"], "photoguard": ["photoguard-encoder"],
              "protections": ["advdm", "sds-minus"], "inpaint_protections": ["diffusionguard"]}
    assert attack_names(attack, "img2img") == [
        "vae.encoder", "photoguard-encoder", "advdm", "sds-minus"]
    assert attack_names(attack, "inpaint")[-1] == "diffusionguard"
    assert attack_names({"targets": None}, "inpaint") == []
