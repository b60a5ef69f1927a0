"""Attack speed: our truncated, batched attack against the study's full-forward loop, side by side.

For every bim target, the same samples are attacked twice on the same model and settings:

* ours: :class:`ldmdata.attacks.runner.Attacker` (stops the forward after the target's last
  call, caches the prompt embeddings, batches ``--batch-size`` pairs);
* reference: the study's loop, one sample at a time, every iteration running the diffusers
  pipeline itself with gradients (``__call__`` unwrapped from its ``no_grad``): prompt
  encoding, all denoising steps and the VAE decode, with the module hooked.

Both use the same BIM loop and start noise, so their first-iteration losses must agree (same
objective). Prints s/sample, the ratio and, on a GPU, peak memory; PhotoGuard's attacks are
timed for ours only. ``--full-size`` uses the full SD-1.5 architecture with random weights.

    python benchmarks/bench_attack.py                       # tiny models, CPU, 64 px
    python benchmarks/bench_attack.py --device cuda --full-size --size 512 --batch-size 5
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from ldmdata.attacks.forward import FeatureRecorder
from ldmdata.attacks.methods import (
    Objective,
    attack_loop,
    compared_rows,
    per_sample_mse,
)
from ldmdata.attacks.params import resolve_params
from ldmdata.attacks.runner import Attacker
from ldmdata.attacks.targets import NAMED_TARGETS
from ldmdata.models.editors import PIPELINES, editor_ref, load_pipeline, pick_device, pick_dtype
from ldmdata.models.tiny.diffusion import sd15_components
from ldmdata.seeds import derive_seed

PROMPTS = ["a red ball on a wooden table", "a dog running in the snow",
           "a boat on a lake at night", "a cat sitting on a sofa", "a car parked on a street"]


def make_sample(seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random picture ``1 x 3 x S x S`` in k/255 and its repaint mask ``1 x 1 x S x S``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    pixels = np.stack([np.sin(6 * xx * rng.uniform(0.5, 2) + 3 * yy + c) * 0.4 + 0.5
                       for c in range(3)], -1)
    pixels = np.round(pixels * 255) / 255
    keep = np.zeros((size, size), bool)
    keep[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    return (torch.from_numpy(pixels).permute(2, 0, 1)[None].float(),
            torch.from_numpy(~keep).float()[None, None])


class PipelineReference(Objective):
    """The study's forward: the whole diffusers pipeline with gradients, every iteration."""

    def __init__(self, pipe, task, params, module, x_clean, prompt, repaint):
        self.pipe, self.task, self.params, self.prompt = pipe, task, params, prompt
        self.call = type(pipe).__call__.__wrapped__  # the pipeline without its no_grad
        self.mask_image = None
        if repaint is not None:
            self.mask_image = Image.fromarray((repaint[0, 0].numpy() * 255).astype(np.uint8))
        guided = params.guidance_scale > 1 and any(m is module for m in pipe.unet.modules())
        self.rows = compared_rows(params.feature_rows, 1, ("uncond", "cond") if guided else ())
        self.recorder = FeatureRecorder(module)
        with torch.no_grad():
            self.clean = [o.detach() for o in self._features(x_clean)]

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        p = self.params
        kwargs = {} if self.mask_image is None else {"mask_image": self.mask_image}
        self.recorder.reset()
        self.recorder.active = True
        try:
            with self.recorder:
                self.call(
                    self.pipe, prompt=self.prompt, image=x,
                    num_inference_steps=p.num_inference_steps, strength=p.strength,
                    guidance_scale=p.guidance_scale, eta=p.eta,
                    generator=torch.Generator().manual_seed(p.seed), output_type="pt", **kwargs,
                )
        finally:
            self.recorder.active = False
        return self.recorder.outputs

    def __call__(self, x_adv, iteration, rep):
        return per_sample_mse(self._features(x_adv), self.clean, 1, self.rows)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fn, device: torch.device) -> tuple[float, float | None, object]:
    """(seconds, peak GPU GiB or None, result) of one ``fn()``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return seconds, peak, result


def interleaved(fns: list, device: torch.device, repeats: int) -> list[tuple]:
    """Run ``fns`` in turn ``repeats`` times; per fn the fastest time, its peak and result.

    Alternating the runs and keeping the minimum gives the figures least disturbed by other
    work on a shared machine.
    """
    best: list[tuple | None] = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            run = measure(fn, device)
            if best[i] is None or run[0] < best[i][0]:
                best[i] = run
    return best


def count_tflops(fn) -> float:
    """TFLOPs of one ``fn()`` (matmuls and convolutions, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e12


def load(task: str, args, device, dtype, tiny_dir: Path):
    if args.full_size:
        pipe = PIPELINES[task](**sd15_components(task)).to(device, dtype)
        pipe.set_progress_bar_config(disable=True)
        pipe.unet.requires_grad_(False)
        pipe.vae.requires_grad_(False)
        pipe.text_encoder.requires_grad_(False)
    else:
        pipe = load_pipeline(editor_ref(task, "tiny", {}, tiny_dir), task, device, dtype)
    if args.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
        pipe.vae.enable_gradient_checkpointing()
    return pipe


def run_ours(attacker: Attacker, samples, prompts, keys, batch_size: int, task: str):
    first = []
    for begin in range(0, len(samples), batch_size):
        chunk = samples[begin : begin + batch_size]
        x = torch.cat([s[0] for s in chunk])
        repaint = torch.cat([s[1] for s in chunk]) if task == "inpaint" else None
        out = attacker.attack(x, prompts[begin : begin + batch_size],
                              keys[begin : begin + batch_size], repaint)
        first += [trace[0] for trace in out["trace"]]
    return first


def run_reference(pipe, task, params, module, samples, prompts, keys, device):
    first = []
    for (x, repaint), prompt, key in zip(samples, prompts, keys, strict=True):
        x = x.to(device)
        objective = PipelineReference(pipe, task, params, module, x, prompt,
                                      repaint if task == "inpaint" else None)
        gens = [torch.Generator("cpu").manual_seed(derive_seed(params.seed, "start", key))]
        first.append(attack_loop(x, objective, params, gens).losses[0, 0].item())
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--full-size", action="store_true",
                        help="full SD-1.5 architecture, random weights (no download)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--samples", type=int, default=2, help="(image, prompt) pairs")
    parser.add_argument("--batch-size", type=int, default=1, help="pairs per attack (ours)")
    parser.add_argument("--tasks", nargs="+", default=["img2img", "inpaint"])
    parser.add_argument("--targets", nargs="+", default=list(NAMED_TARGETS))
    parser.add_argument("--methods", nargs="*", default=["photoguard-encoder",
                                                         "photoguard-diffusion"])
    parser.add_argument("--iterations", type=int, default=None,
                        help="attack iterations (default: the preset's)")
    parser.add_argument("--no-reference", action="store_true", help="time ours only")
    parser.add_argument("--repeats", type=int, default=1, help="report the fastest of N runs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--count-flops", action="store_true",
                        help="also count TFLOPs per sample (one extra untimed run each)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--tiny-dir", type=Path, default=None)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "-"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}, device {device} ({gpu}), {args.dtype}")
    print(f"model: {'full-size SD-1.5 (random weights)' if args.full_size else 'tiny set'}, "
          f"{args.size}px, {args.samples} samples, ours batch {args.batch_size}, "
          f"gradient checkpointing {args.gradient_checkpointing}, fastest of {args.repeats}")
    samples = [make_sample(i, args.size) for i in range(args.samples)]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.samples)]
    keys = [f"bench{i}" for i in range(args.samples)]
    overrides = {"iterations": args.iterations}

    with tempfile.TemporaryDirectory() as tmp:
        tiny_dir = args.tiny_dir or Path(tmp) / "tiny"
        header = (f"{'task':<8} {'attack':<28} {'iters':>5} {'ours s/smp':>10} {'ref s/smp':>9} "
                  f"{'ratio':>6} {'ours loss@1':>11} {'ref loss@1':>11} {'ours GiB':>8} "
                  f"{'ref GiB':>7}")
        print(header)
        for task in args.tasks:
            pipe = load(task, args, device, dtype, tiny_dir)
            runs = [("bim", t) for t in args.targets] + [(m, None) for m in args.methods]
            for method, target in runs:
                params = resolve_params(method, task, target, overrides=overrides)
                attacker = Attacker(pipe, task, params)
                on_device = [(x.to(device), repaint.to(device)) for x, repaint in samples]
                fns = [lambda a=attacker, t=task, s=on_device: run_ours(
                    a, s, prompts, keys, args.batch_size, t)]
                with_reference = method == "bim" and not args.no_reference
                if with_reference:
                    fns.append(lambda a=attacker, t=task: run_reference(
                        a.pipe, t, a.params, a.module, samples, prompts, keys, device))
                results = interleaved(fns, device, args.repeats)
                ours_s, ours_gib, ours_first = results[0]
                line = (f"{task:<8} {method + (':' + target if target else ''):<28} "
                        f"{params.iterations:>5} {ours_s / args.samples:>10.3f}")
                if with_reference:
                    ref_s, ref_gib, ref_first = results[1]
                    line += (f" {ref_s / args.samples:>9.3f} {ref_s / ours_s:>6.2f} "
                             f"{np.mean(ours_first):>11.4g} {np.mean(ref_first):>11.4g}")
                    gib = (f" {ours_gib:>8.2f} {ref_gib:>7.2f}" if ours_gib is not None else "")
                    if args.count_flops:
                        ours_tf, ref_tf = (count_tflops(fn) / args.samples for fn in fns)
                        gib += (f"  TFLOP/sample ours {ours_tf:.4g} ref {ref_tf:.4g} "
                                f"ratio {ref_tf / ours_tf:.2f}")
                else:
                    line += f" {'-':>9} {'-':>6} {np.mean(ours_first):>11.4g} {'-':>11}"
                    gib = f" {ours_gib:>8.2f}" if ours_gib is not None else ""
                print(line + gib, flush=True)
            del pipe
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
