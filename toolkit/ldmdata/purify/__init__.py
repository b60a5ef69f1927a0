"""Purifiers (defences) as a library: specs, the pixel defences and the diffusion purifiers.

Below every stage that uses them: ``defend`` applies one to a whole set, ``edit`` applies one
before editing, and ``attacks`` differentiates through them (or around them, BPDA) for EOT.
The names below load on first use, so the specs (``ldmdata.purify.spec``) stay free of torch.
"""

from ldmdata.lazy import lazy_exports

_LAZY = {
    "Defender": "ldmdata.purify.defender",
    **dict.fromkeys(("DEFAULTS", "METHODS", "MODEL_KINDS", "Defence", "make_defence",
                     "parse_defence", "split_spec"), "ldmdata.purify.spec"),
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
