"""One seed derivation for every stage: a pure function of named parts."""

from __future__ import annotations

import hashlib
import json


def derive_seed(*parts) -> int:
    """A 63-bit seed from any JSON-able parts (stable across runs, machines and batchings)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)
