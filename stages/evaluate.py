"""DVC stage: evaluate every edited set. Usage:
evaluate.py EDITS_ROOT DATASETS_ROOT METRICS_DIR TABLES_DIR [TINY_DIR]

Reads EDITS_ROOT/<task>/plan.json and params.yaml's ``evaluate`` and ``models`` sections;
writes METRICS_DIR/<task>/<run>/<input>.json and TABLES_DIR/<task>/<run>/<input>.parquet.
A problem prints one line and exits 2.
"""

import sys
from pathlib import Path

from ldmdata.errors import LdmdataError
from ldmdata.metrics.plan import evaluate_from_params
from ldmdata.params import load_params

edits_root, datasets_root, metrics_dir, tables_dir = map(Path, sys.argv[1:5])
tiny_dir = Path(sys.argv[5]) if len(sys.argv) > 5 else None
try:
    summaries = evaluate_from_params(
        edits_root, datasets_root, metrics_dir, tables_dir, load_params(), tiny_dir,
        progress=lambda name: print(f"evaluate {name}", flush=True),
    )
except LdmdataError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
print(f"{metrics_dir}: {len(summaries)} evaluation(s)")
