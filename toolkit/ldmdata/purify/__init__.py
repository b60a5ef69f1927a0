"""Purifiers (defences) as a library: specs, the pixel defences and the diffusion purifiers.

Below every stage that uses them: ``defend`` applies one to a whole set, ``edit`` applies one
before editing, and ``attacks`` differentiates through them (or around them, BPDA) for EOT.
"""

from ldmdata.purify.defender import Defender
from ldmdata.purify.spec import (
    DEFAULTS,
    METHODS,
    MODEL_KINDS,
    Defence,
    make_defence,
    parse_defence,
    split_spec,
)

__all__ = [
    "DEFAULTS",
    "METHODS",
    "MODEL_KINDS",
    "Defence",
    "Defender",
    "make_defence",
    "parse_defence",
    "split_spec",
]
