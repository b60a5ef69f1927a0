"""DVC stage: attack one dataset. Usage: attack.py DATASET_DIR OUT_DIR ATTACK [TINY_DIR]

ATTACK is a bim target (``vae.encoder``, ``unet.cross_attn``, any dotted module path) or
another method (``photoguard-encoder``, ``advdm``, ``sds-minus``, ...; see
``ldmdata.attacks.params.METHODS``). Reads params.yaml's
``attack`` and ``models`` sections; a problem prints one line and exits 2.
"""

import sys
from pathlib import Path

from ldmdata.attacks.runner import attack_from_params
from ldmdata.errors import LdmdataError
from ldmdata.params import load_params

dataset_dir, out_dir, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
tiny_dir = Path(sys.argv[4]) if len(sys.argv) > 4 else None
try:
    manifest = attack_from_params(dataset_dir, out_dir, name, load_params(), tiny_dir)
except LdmdataError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
print(f"{out_dir}: {manifest['n']} adversarial images, content_hash {manifest['content_hash']}")
