"""The command line starts without the heavy libraries: importing it, and every ``--help``, load
none of torch, diffusers, transformers, datasets, dvc, torchmetrics (benchmarks/bench_startup.py
measures the time; tests do not)."""

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "datasets", "dvc", "dvc_data", "torchmetrics")
TOOLKIT = Path(__file__).resolve().parents[1] / "toolkit"

HELP_EVERY_COMMAND = """
import json, sys
import typer
from typer.testing import CliRunner
from ldmdata.cli.app import app

def paths(command, prefix=()):
    yield list(prefix)
    for name, sub in getattr(command, "commands", {}).items():  # a group's subcommands
        yield from paths(sub, (*prefix, name))

shown = []
for argv in paths(typer.main.get_command(app)):
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output, (argv, result.output)
    shown.append(argv)
"""

LOADED = """
print(json.dumps({"shown": globals().get("shown", []),
                  "top_level": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def run_python(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOOLKIT),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library():
    loaded = run_python("import json, sys\nimport ldmdata.cli.app\n" + LOADED)
    assert "typer" in loaded["top_level"] and not set(HEAVY) & set(loaded["top_level"])


def test_every_help_loads_no_heavy_library():
    loaded = run_python(HELP_EVERY_COMMAND + LOADED)
    assert not set(HEAVY) & set(loaded["top_level"])
    shown = {" ".join(argv) for argv in loaded["shown"]}
    assert {"", "build", "build sr", "models tiny", "attack", "edit", "evaluate",
            "publish"} <= shown
