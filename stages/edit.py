"""DVC stage: every edit of one task. Usage: edit.py TASK DATASET_DIR ATTACKS_DIR OUT_DIR [TINY_DIR]

Edits the clean dataset and each attack of ``attack.targets``, ``attack.photoguard``,
``attack.protections`` and (inpaint) ``attack.inpaint_protections`` (ATTACKS_DIR/<attack>),
plus the transfer and defence runs of ``edit.runs``, into OUT_DIR/<run>/<input>, and writes
OUT_DIR/plan.json for the evaluate stage. Reads params.yaml's
``edit``, ``attack`` and ``models`` sections; a problem prints one line and exits 2.
"""

import sys
from pathlib import Path

from ldmdata.edit.plan import edit_from_params
from ldmdata.errors import LdmdataError
from ldmdata.params import load_params

task, dataset_dir, attacks_dir, out_dir = sys.argv[1], *map(Path, sys.argv[2:5])
tiny_dir = Path(sys.argv[5]) if len(sys.argv) > 5 else None
try:
    plan = edit_from_params(task, dataset_dir, attacks_dir, out_dir, load_params(), tiny_dir,
                            progress=lambda name: print(f"edit {task}/{name}", flush=True))
except LdmdataError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
sets = sum(len(run["sets"]) for run in plan["runs"].values())
print(f"{out_dir}: {len(plan['runs'])} run(s), {sets} edited set(s) besides the clean edits")
