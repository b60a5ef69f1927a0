"""``ldmdata attack`` and the attack stage: output dataset, provenance, resume, bad input."""

import json
import shutil

import pytest

from helpers.attack_data import make_dataset
from helpers.cli import CliRunner, command
from ldmdata.attacks.runner import RunOptions, attack, attack_from_params
from ldmdata.dataset import iter_rows, verify
from ldmdata.errors import LdmdataError
from ldmdata.provenance import dvc_hash

app = command("attack")
runner = CliRunner()
FAST = ["--steps", "2", "--inference-steps", "2"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack_data")
    for kind in ("img2img", "inpaint", "sr"):
        make_dataset(root / kind, kind)
    return root


def test_cli_writes_the_adversarial_dataset_with_provenance(datasets_dir, tmp_path, tiny_dir):
    out = tmp_path / "adv"
    result = cli(datasets_dir / "inpaint", "--out", out, "--target", "unet.self_attn",
                 "--tiny-dir", tiny_dir, "--batch-size", 3, "--feature-rows", "cond",
                 "--storage", "truncate", *FAST)
    assert result.exit_code == 0, result.output
    assert "4 adversarial images (bim, unet.self_attn)" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "attack" and manifest["task"] == "inpaint" and manifest["n"] == 4
    assert manifest["input"]["dvc_hash"] == dvc_hash(datasets_dir / "inpaint")
    assert manifest["model"]["id"] == str(tiny_dir / "sd_inpaint")
    assert manifest["model"]["revision"].startswith("tiny-sha256:")
    attack_info = manifest["attack"]
    assert attack_info["module"] == "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1"
    assert attack_info["params"]["eps"] == 0.1 and attack_info["params"]["iterations"] == 2
    assert attack_info["params"]["seed"] == 9209 and attack_info["objective"] == "maximize"
    assert attack_info["params"]["feature_rows"] == "cond"
    assert attack_info["params"]["storage"] == "truncate"
    assert manifest["timing"]["seconds_per_sample"] > 0
    assert verify(out) == []
    rows = list(iter_rows(out))
    assert [r["id"] for r in rows] == ["s0-p0", "s0-p1", "s1-p0", "s1-p1"]
    assert [r["prompt_index"] for r in rows] == [0, 1, 0, 1]
    for row in rows:
        assert row["image"].mode == "RGB" and row["image"].size == (64, 64)
        assert 0 < row["linf"] * 255 <= 26 + 1e-4  # truncated: up to one level past eps
        assert row["l2"] > 0 and row["iterations"] == 2
        assert len(row["loss_trace"]) == 2 and row["loss_first"] == row["loss_trace"][0]
        assert row["seconds"] > 0
        assert row["peak_memory_mb"] is None  # no accelerator on this machine
    assert manifest["timing"]["peak_memory_mb"] is None
    # measurements never change content_hash
    assert manifest["unhashed_columns"] == ["seconds", "peak_memory_mb"]
    assert manifest["timing"]["seconds_total"] == pytest.approx(sum(r["seconds"] for r in rows))


def test_same_seed_same_hash_and_an_interrupted_run_resumes(datasets_dir, tmp_path, tiny_dir):
    kwargs = dict(method="photoguard-encoder", overrides={"iterations": 2}, tiny_dir=tiny_dir)
    first = attack(datasets_dir / "img2img", tmp_path / "a",
                   options=RunOptions(batch_size=2, shard_size=2), **kwargs)

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attack(datasets_dir / "img2img", tmp_path / "b",
               options=RunOptions(batch_size=2, shard_size=2), progress=interrupt, **kwargs)
    assert (tmp_path / "b" / "data" / "train-00000.parquet").exists()
    assert not (tmp_path / "b" / "manifest.json").exists()
    seen = []
    resumed = attack(datasets_dir / "img2img", tmp_path / "b",
                     options=RunOptions(batch_size=2, shard_size=2),
                     progress=lambda done, total: seen.append(done), **kwargs)
    assert seen == [4]  # only the second shard's batch ran again
    assert resumed["content_hash"] == first["content_hash"]
    seconds = [r["seconds"] for r in iter_rows(tmp_path / "b", columns=["seconds"])]
    assert len(seconds) == 4 and resumed["timing"]["seconds_total"] == pytest.approx(sum(seconds))
    other = attack(datasets_dir / "img2img", tmp_path / "c",
                   options=RunOptions(batch_size=2, shard_size=2),
                   **{**kwargs, "overrides": {"iterations": 2, "seed": 1}})
    assert other["content_hash"] != first["content_hash"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--target", "vae.encoder", "--eps", "0"], "eps must be > 0"),
        (["--target", "vae.encoder", "--eps", "-1"], "eps must be > 0"),
        (["--target", "unet.nope"], "named targets: vae.encoder, vae.quant_conv, unet.self_attn"),
        (["--target", "vae.encoder", "--prompts", "one"], "--prompts"),
        (["--target", "vae.encoder", "--method", "photoguard-encoder"], "--target-image"),
        (["--target", "vae.encoder", "--preset", "fast"], "unknown preset"),
        (["--target", "vae.encoder", "--threads", "0"], "threads must be an integer >= 1"),
        (["--target", "unet.ff", "--feature-rows", "first"], "feature_rows must be one of"),
        (["--target", "vae.encoder", "--storage", "floor"], "storage must be one of"),
        (["--target", "vae.encoder", "--dtype", "float16", "--device", "cpu"], "needs a GPU"),
        (["--target", "vae.encoder", "--model", "stable-diffusion-v1-5/stable-diffusion-v1-5",
          "--revision", "0123abc"], "not in the local Hugging Face cache"),
        (["--target", "vae.encoder", "--profile", "real", "--params", "/no/params.yaml"],
         "params file not found"),
        (["--method", "diffusionguard"], "masked-image conditioning; a img2img dataset has none"),
        (["--method", "sds-minus", "--preset", "mist"], "preset mist is for mist"),
        (["--method", "advdm", "--t-min", "9", "--t-max", "3"], "need 0 <= t_min <= t_max"),
        (["--method", "mist", "--semantic-weight", "-1"], "semantic_weight must be >= 0"),
        (["--method", "advdm", "--t-max", "1000"], "t_max 1000 is past this model's"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(datasets_dir, tmp_path, tiny_dir, args, message):
    result = cli(datasets_dir / "img2img", "--out", tmp_path / "o", "--tiny-dir", tiny_dir, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()


def test_cli_runs_a_protection_mask_aware_on_inpainting(datasets_dir, tmp_path, tiny_dir):
    out = tmp_path / "sdst"
    result = cli(datasets_dir / "inpaint", "--out", out, "--method", "sdst", "--tiny-dir",
                 tiny_dir, "--steps", "2", "--prompts", "0", "--attack-prompt", "a photo")
    assert result.exit_code == 0, result.output
    assert "2 adversarial images (sdst)" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    params = manifest["attack"]["params"]
    assert manifest["attack"]["objective"] == "minimize" and params["mask_aware"]
    assert (params["attack_prompt"], params["semantic_weight"]) == ("a photo", 5.0)
    assert verify(out) == []
    for row in iter_rows(out):
        assert 0 < row["linf"] <= 16 / 255 + 1e-6 and len(row["loss_trace"]) == 2


def test_a_dataset_of_the_wrong_task_is_refused(datasets_dir, tmp_path, tiny_dir):
    edits = tmp_path / "edits"
    shutil.copytree(datasets_dir / "img2img", edits)
    manifest = json.loads((edits / "manifest.json").read_text())
    (edits / "manifest.json").write_text(json.dumps({**manifest, "kind": "edit"}))
    result = cli(edits, "--out", tmp_path / "o", "--target", "vae.encoder",
                 "--tiny-dir", tiny_dir)
    assert result.exit_code == 2
    assert "is a 'edit' dataset; attacks need an img2img, inpaint or sr dataset" in result.output
    missing = cli(tmp_path / "nothing", "--out", tmp_path / "o", "--target", "vae.encoder")
    assert missing.exit_code == 2 and "no manifest.json" in missing.output


def test_list_targets_and_help():
    listed = cli("--list-targets")
    assert listed.exit_code == 0
    for name in ("vae.encoder", "unet.self_attn", "unet.cross_attn", "unet.ff", "unet.resnet",
                 "vae.quant_conv", "vae.post_quant_conv", "vae.decoder"):
        assert name in listed.output
    assert "unet.down_blocks.1.resnets.0" in listed.output
    assert "--list-targets" in cli("--help").output


def test_stage_reads_its_params_section(datasets_dir, tmp_path, tiny_dir):
    params = {
        "models": {"profile": "tiny"},
        "attack": {"limit": 1, "prompts": [1], "batch_size": 1,
                   "bim": {"iterations": 1, "num_inference_steps": 2, "feature_rows": "both",
                           "storage": "truncate"}},
    }
    manifest = attack_from_params(datasets_dir / "img2img", tmp_path / "s", "vae.quant_conv",
                                  params, tiny_dir)
    assert manifest["n"] == 1 and manifest["attack"]["target"] == "vae.quant_conv"
    assert manifest["attack"]["params"]["feature_rows"] == "both"
    assert manifest["config"]["attack"]["storage"] == "truncate"
    assert [r["id"] for r in iter_rows(tmp_path / "s", decode_images=False)] == ["s0-p1"]
    params["attack"]["bim"]["iterations"] = 2  # changed params replace the stale output
    again = attack_from_params(datasets_dir / "img2img", tmp_path / "s", "vae.quant_conv",
                               params, tiny_dir)
    assert again["attack"]["params"]["iterations"] == 2
    params["attack"]["advdm"] = {"iterations": 1, "t_max": 500}
    advdm = attack_from_params(datasets_dir / "img2img", tmp_path / "p", "advdm", params,
                               tiny_dir)
    assert advdm["attack"]["method"] == "advdm" and advdm["attack"]["target"] is None
    assert (advdm["attack"]["params"]["iterations"], advdm["attack"]["params"]["t_max"]) == (1, 500)
    params["attack"]["limits"] = 3
    with pytest.raises(LdmdataError, match="unknown key"):
        attack_from_params(datasets_dir / "img2img", tmp_path / "s", "vae.quant_conv",
                           params, tiny_dir)


