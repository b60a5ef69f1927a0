"""Start-up time of the command line and of each DVC stage's library, in fresh processes.

Times ``ldmdata --help``, every subcommand's ``--help``, and ``python -c "import MODULE"`` for
each ``ldmdata`` module a stage script in ``stages/`` imports; best of ``--repeat`` runs each.
Runs this checkout's code (``toolkit/`` first on ``PYTHONPATH``):

    python benchmarks/bench_startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import ast
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    [], ["build"], ["build", "inpaint"], ["build", "img2img"], ["build", "sr"],
    ["models"], ["models", "tiny"], ["verify"], ["attack"], ["defend"], ["edit"],
    ["evaluate"], ["trace"], ["report"], ["publish"],
]


def stage_modules() -> list[str]:
    """The ``ldmdata`` modules the stage scripts import at their top level, sorted."""
    names = set()
    for script in sorted((ROOT / "stages").glob("*.py")):
        for node in ast.parse(script.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ldmdata."):
                names.add(node.module)
    return sorted(names)


def best_time(argv: list[str], repeat: int) -> tuple[float, float]:
    """Wall and CPU seconds of the fastest of ``repeat`` runs of ``argv`` (each must exit 0)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "toolkit"),
                                                        os.environ.get("PYTHONPATH", "")])}
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [(f"ldmdata {' '.join(cmd + ['--help'])}",
             [sys.executable, "-m", "ldmdata.cli", *cmd, "--help"]) for cmd in COMMANDS]
    rows += [(f"import {name}", [sys.executable, "-c", f"import {name}"])
             for name in stage_modules()]
    print("   wall      cpu")
    for label, argv in rows:
        wall, cpu = best_time(argv, args.repeat)
        print(f"{wall:7.2f} s {cpu:7.2f} s  {label}", flush=True)


if __name__ == "__main__":
    main()
