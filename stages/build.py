"""DVC stage: build one dataset from params.yaml. Usage: build.py TASK OUT_DIR TINY_DIR"""

import sys
from pathlib import Path

from ldmdata.builders import build_dataset
from ldmdata.params import load_params

if len(sys.argv) != 4:
    sys.exit("usage: python stages/build.py TASK OUT_DIR TINY_DIR")
task, out_dir, tiny_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
params = load_params()
models = dict(params["models"])
manifest = build_dataset(
    task,
    out_dir,
    params[f"build_{task}"],
    source=params["source"]["spec"],
    profile=models.pop("profile"),
    models_params=models,
    tiny_dir=tiny_dir,
    overwrite=True,  # DVC re-runs this stage only when its deps or params changed
)
print(f"{out_dir}: {manifest['n']} rows, content_hash {manifest['content_hash']}")
