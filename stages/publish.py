"""Optional DVC stage: publish a built dataset to the Hub. Usage: publish.py DATASET_DIR

Reads params.yaml's ``publish`` section (repo_id, private, revision, license, pretty_name).
A problem (no token, offline, bad repo id, a dataset that fails verification) prints one line
and exits 2, so ``dvc repro`` stops without a traceback.
"""

import sys
from pathlib import Path

from ldmdata.errors import LdmdataError
from ldmdata.params import load_params, merge_known
from ldmdata.publish import DEFAULT_LICENSE, publish

DEFAULTS = {
    "repo_id": None,
    "private": True,
    "revision": None,
    "license": DEFAULT_LICENSE,
    "pretty_name": None,
}

dataset_dir = Path(sys.argv[1])
try:
    params = merge_known(DEFAULTS, load_params().get("publish") or {}, "params.yaml publish")
    if not params["repo_id"]:
        raise LdmdataError("params.yaml publish.repo_id is not set (OWNER/NAME on the Hub)")
    result = publish(
        dataset_dir,
        params["repo_id"],
        private=bool(params["private"]),
        revision=params["revision"],
        license=params["license"],
        pretty_name=params["pretty_name"],
    )
except LdmdataError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
print(f"published {dataset_dir} to {result.repo_id}@{result.revision}: {result.commit_url}")
