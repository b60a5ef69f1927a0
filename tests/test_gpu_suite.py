"""The GPU suite: its CPU smoke mode (so it never rots), its guards, its full-size models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ldmdata.attacks.params import METHODS
from ldmdata.attacks.targets import NAMED_TARGETS, off_path, resolve_target
from ldmdata.models.editors import PIPELINES
from ldmdata.models.tiny.diffusion import sd15_components, upscaler_components

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.py"


@pytest.fixture
def gpu_suite(monkeypatch):
    """The suite's module, imported as its script imports its neighbours."""
    monkeypatch.syspath_prepend(str(SUITE.parent))
    import gpu_suite

    return gpu_suite


def _numbers(row: dict) -> bool:
    return row["status"] == "ok" and row["s_per_sample"] > 0


@pytest.mark.slow
def test_smoke_run_writes_a_row_per_method_and_target(tiny_dir, tmp_path):
    out = tmp_path / "suite.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "toolkit"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--smoke", "--tiny-dir", str(tiny_dir), "--out", str(out),
         "--budget-s", "3600"],
        env=env, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    rows = data["rows"]
    batched = {(r["method"], r["target"]): r for r in rows
               if (r["editor"], r["dtype"], r["batch"]) == ("img2img", "float32", 2)}
    expected = {("bim", t) for t in NAMED_TARGETS} | {(m, None) for m in METHODS if m != "bim"}
    assert set(batched) == expected
    measured = [r for r in rows if r["editor"] != "builders" and not r["status"].startswith("n/a")]
    assert all(_numbers(r) and r["s_per_iteration"] > 0 for r in measured)
    assert all(r["iterations"] >= 1 for r in measured)
    # the only rows without figures: methods an editor cannot run, said so in one line
    assert [r["method"] for r in rows if r["status"].startswith("n/a")
            and r["editor"] == "img2img"] == ["diffusionguard"]
    (reference,) = [r for r in rows if r["method"] == "reference"]
    study = [r for r in rows if (r["method"], r["target"]) == ("bim", reference["target"])
             and r["editor"] == "img2img" and r["dtype"] == "float32"]
    assert all(r["vs_ref"] == pytest.approx(reference["s_per_sample"] / r["s_per_sample"])
               for r in study)
    builders = [r for r in rows if r["editor"] == "builders"]
    assert len(builders) == 4 and all(_numbers(r) and r["samples_per_s"] > 0 for r in builders)
    assert {"img2img", "inpaint", "ip2p", "upscale"} <= {r["editor"] for r in rows}
    assert len(data["checks"]) == 7
    table = out.read_text()
    for r in rows:
        if r["editor"] != "builders":
            name = r["method"] + (f":{r['target']}" if r["target"] else "")
            assert f"| {r['editor']} | {r['dtype']} | {name} | {r['batch']} |" in table
    assert "| target | figure | result |" in table


def test_spent_budget_marks_every_row_skipped(gpu_suite, tiny_dir, tmp_path):
    out = tmp_path / "suite.md"
    gpu_suite.main(["--smoke", "--tiny-dir", str(tiny_dir), "--out", str(out), "--budget-s", "0"])
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert rows and all(r["status"] == "skipped (budget)" for r in rows)
    assert out.read_text().count("skipped (budget)") == len(rows)


@pytest.mark.slow
def test_a_failing_method_is_a_row_and_the_suite_goes_on(gpu_suite, tiny_dir, tmp_path,
                                                          monkeypatch):
    from ldmdata.attacks import methods

    def broken(self, x_adv, iteration, rep):
        raise RuntimeError("encoder attack broke\nsecond line")

    monkeypatch.setattr(methods.EncoderAttack, "__call__", broken)
    monkeypatch.setattr(gpu_suite, "SMOKE_PLAN", [
        ("img2img", "float32", (), ("photoguard-encoder",), (0,), False),
        ("img2img", "float32", ("vae.encoder",), (), (0,), False),
        ("upscale", "float32", ("vae.encoder",), ("photoguard-encoder",), (0,), False),
    ])
    out = tmp_path / "suite.md"
    gpu_suite.main(["--smoke", "--tiny-dir", str(tiny_dir), "--out", str(out)])
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    status = {(r["editor"], r["method"], r["target"]): r["status"] for r in rows}
    assert status[("img2img", "photoguard-encoder", None)] == (
        "error: RuntimeError: encoder attack broke")
    assert status[("img2img", "bim", "vae.encoder")] == "ok"
    # Methods and targets an editor cannot run are rows too, marked not applicable.
    assert status[("upscale", "bim", "vae.encoder")].startswith("n/a: target vae.encoder")
    assert status[("upscale", "photoguard-encoder", None)].startswith("n/a: ")


@pytest.mark.slow
def test_out_of_memory_is_retried_with_gradient_checkpointing(gpu_suite, tiny_dir, tmp_path,
                                                               monkeypatch):
    from ldmdata.attacks import methods

    original, calls = methods.EncoderAttack.__call__, []

    def short_of_memory_once(self, x_adv, iteration, rep):
        calls.append(self.forward.vae.encoder.gradient_checkpointing)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return original(self, x_adv, iteration, rep)

    monkeypatch.setattr(methods.EncoderAttack, "__call__", short_of_memory_once)
    monkeypatch.setattr(gpu_suite, "SMOKE_PLAN", [
        ("img2img", "float32", (), ("photoguard-encoder",), (0,), False)])
    out = tmp_path / "suite.md"
    gpu_suite.main(["--smoke", "--tiny-dir", str(tiny_dir), "--out", str(out)])
    (row,) = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert (row["status"], row["grad_ckpt"]) == ("ok", True)
    assert calls[0] is False and all(calls[1:])  # the retry ran with checkpointing on
    assert "| yes |" in out.read_text()


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("editor, unet_params", [
    # Published sizes: SD-1.5's UNet 859.52M (4 input channels); the inpainting UNet's 9 and
    # InstructPix2Pix's 8 input channels add 320 x 3 x 3 weights per channel.
    ("img2img", 859_520_964), ("inpaint", 859_535_364), ("ip2p", 859_532_484),
])
def test_full_size_sd15_has_the_published_sizes(editor, unet_params):
    parts = sd15_components(editor, device="meta")  # shapes only: no memory, no time
    assert _count(parts["unet"]) == unet_params
    assert _count(parts["vae"]) == 83_653_863  # SD's KL-f8 VAE
    assert _count(parts["text_encoder"]) == 123_060_480  # CLIP ViT-L/14's text tower
    pipe = PIPELINES[editor](**parts)
    for name, (path, _) in NAMED_TARGETS.items():
        assert resolve_target(pipe, name)[0] == path


def test_full_size_upscaler_has_the_x4_layout():
    parts = upscaler_components(device="meta")
    unet = parts["unet"]
    assert unet.config.in_channels == 7 and unet.config.num_class_embeds == 1000
    assert list(unet.config.block_out_channels) == [256, 512, 512, 1024]
    assert parts["text_encoder"].config.hidden_size == unet.config.cross_attention_dim == 1024
    assert list(parts["vae"].config.block_out_channels) == [128, 256, 512]  # 4x, not 8x
    pipe = PIPELINES["upscale"](**parts)
    for name, (path, _) in NAMED_TARGETS.items():
        if not off_path(path, "upscale"):
            assert resolve_target(pipe, name)[0] == path
