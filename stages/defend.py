"""DVC stage (optional): defend one set. Usage: defend.py INPUT_DIR OUT_DIR [TINY_DIR]

Reads params.yaml's ``defend`` and ``models`` sections; a problem prints one line and exits 2.
"""

import sys
from pathlib import Path

from ldmdata.defend.runner import defend_from_params
from ldmdata.errors import LdmdataError
from ldmdata.params import load_params

input_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
tiny_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else None
try:
    manifest = defend_from_params(input_dir, out_dir, load_params(), tiny_dir)
except LdmdataError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
print(f"{out_dir}: {manifest['n']} images, {manifest['defence']['label']}, "
      f"content_hash {manifest['content_hash']}")
