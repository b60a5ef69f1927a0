"""Engine throughput: one attack run in-process (``local``) and on Ray with 1 and 2 workers.

Builds a small img2img dataset (synthetic source, tiny models unless ``--tiny-dir`` points at
another model set), then attacks it with each engine into a fresh folder and prints pairs per
second as a Markdown table, with the wall time of the whole ``attack_dataset`` call (for Ray:
the actors' model loading included, the Ray cluster's start excluded: it is started once
before). Every run must give the same ``content_hash``; the script checks it.

    python benchmarks/bench_engine.py                              # tiny models, CPU
    python benchmarks/bench_engine.py --workers 1 2 4 8 --gpus-per-worker 1 --device auto
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import ray
import torch

from ldmdata.attacks.runner import RunOptions, attack
from ldmdata.builders import build_dataset
from ldmdata.engine import Engine
from ldmdata.models.refs import default_tiny_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="images (x 2 prompts = pairs)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--target", default="unet.cross_attn")
    parser.add_argument("--steps", type=int, default=4, help="attack iterations")
    parser.add_argument("--inference-steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gpus-per-worker", type=float, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tiny_dir = args.tiny_dir or default_tiny_dir()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = root / "dataset"
        build_dataset("img2img", dataset, {"n": args.n, "size": args.size, "num_prompts": 2,
                                           "shard_size": 1000}, tiny_dir=tiny_dir)
        overrides = {"iterations": args.steps, "num_inference_steps": args.inference_steps}
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1",
                                           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
        engines = [Engine()] + [Engine("ray", workers=w, gpus_per_worker=args.gpus_per_worker)
                                for w in args.workers]
        rows = []
        for engine in engines:
            options = RunOptions(prompts=[0, 1], batch_size=args.batch_size, device=args.device,
                                 threads=1, engine=engine)
            t0 = time.perf_counter()
            manifest = attack(dataset, root / f"out-{len(rows)}", target=args.target,
                              overrides=overrides, tiny_dir=tiny_dir, options=options)
            seconds = time.perf_counter() - t0
            label = "local" if engine.name == "local" else f"ray, {engine.workers} worker(s)"
            rows.append((label, manifest["n"], seconds, manifest["content_hash"]))
        ray.shutdown()
    print(f"attack bim {args.target}: {args.n} images x 2 prompts, {args.size} px, "
          f"{args.steps} iterations x {args.inference_steps} inference steps, batch "
          f"{args.batch_size}, device {args.device}; {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} CPUs\n")
    print("| engine | pairs | wall s | pairs/s | speed-up vs local |")
    print("|---|---|---|---|---|")
    for label, n, seconds, _ in rows:
        print(f"| {label} | {n} | {seconds:.1f} | {n / seconds:.3f} | {rows[0][2] / seconds:.2f} |")
    hashes = {h for *_, h in rows}
    print(f"\ncontent_hash identical across engines: {len(hashes) == 1} ({rows[0][3][:16]}...)")


if __name__ == "__main__":
    main()
