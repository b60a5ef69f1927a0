"""DVC stage: the offline tiny model set (every role). Usage: models_tiny.py OUT_DIR"""

import sys
from pathlib import Path

from ldmdata.models.tiny import build_tiny_models

if len(sys.argv) != 2:
    sys.exit("usage: python stages/models_tiny.py OUT_DIR")
out_dir = build_tiny_models(Path(sys.argv[1]))
print(f"{out_dir}: tiny models for every role")
