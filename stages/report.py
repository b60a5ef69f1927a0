"""DVC stage: the report. Usage: report.py METRICS_DIR OUT_DIR

Reads params.yaml's ``report`` section; writes OUT_DIR/report.md, OUT_DIR/report.html,
OUT_DIR/images/ and OUT_DIR/plots/*.json. A problem prints one line and exits 2.
"""

import sys
from pathlib import Path

from ldmdata.errors import LdmdataError
from ldmdata.params import load_params
from ldmdata.report import report

metrics_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
try:
    paths = report(metrics_dir, out_dir, load_params().get("report") or {})
except LdmdataError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
print(f"{paths['markdown']}, {paths['html']}")
