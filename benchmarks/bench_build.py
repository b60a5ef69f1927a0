"""Build speed and memory on the embedded default (synthetic source + tiny models).

Each task runs in its own process (so peak RSS is that build's alone) through the same library
call as the CLI; prints rows/s, s/row and peak RSS. The tiny set is built before timing.

    python benchmarks/bench_build.py --n 10000 --tasks inpaint img2img sr
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time
from ldmdata.builders import build_dataset
task, out, tiny, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
manifest = build_dataset(task, out, {"n": n}, tiny_dir=tiny)
seconds = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": manifest["n"], "rejected": manifest["rejects"]["count"],
                  "seconds": seconds, "peak_rss_mib": peak_kib / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--tasks", nargs="+", default=["inpaint", "img2img", "sr"])
    args = parser.parse_args()

    from ldmdata.models.tiny import build_tiny_models

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny"
        start = time.perf_counter()
        build_tiny_models(tiny)
        print(f"tiny model set built in {time.perf_counter() - start:.1f} s")
        print(f"{'task':<8} {'rows':>6} {'rejected':>8} {'seconds':>8} {'rows/s':>7} "
              f"{'ms/row':>7} {'peak RSS MiB':>12}")
        for task in args.tasks:
            out = Path(tmp) / task
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, task, str(out), str(tiny), str(args.n)],
                env=env, capture_output=True, text=True,
            )
            if proc.returncode:
                sys.exit(f"{task} failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{task:<8} {r['rows']:>6} {r['rejected']:>8} {r['seconds']:>8.1f} "
                  f"{r['rows'] / r['seconds']:>7.1f} {1000 * r['seconds'] / r['rows']:>7.1f} "
                  f"{r['peak_rss_mib']:>12.0f}")


if __name__ == "__main__":
    main()
