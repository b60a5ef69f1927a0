"""Input-purification defences: alone (``ldmdata defend``) or as a step before an edit.

The names below load on first use, so ``ldmdata.defend.defaults`` (what the CLI's help needs)
stays free of torch.
"""

from ldmdata.lazy import lazy_exports

_LAZY = {
    **dict.fromkeys(("DEFAULTS", "METHODS"), "ldmdata.defend.defaults"),
    **dict.fromkeys(("Defence", "Defender", "make_defence", "parse_defence"),
                    "ldmdata.defend.methods"),
    **dict.fromkeys(("DefendOptions", "defend", "defend_dataset"), "ldmdata.defend.runner"),
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
