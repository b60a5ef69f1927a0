"""Input-purification defences: alone (``ldmdata defend``) or as a step before an edit.

The names below load on first use, so the CLI's help stays free of torch; the defences
themselves live in :mod:`ldmdata.purify`.
"""

from ldmdata.lazy import lazy_exports

_LAZY = dict.fromkeys(("DefendOptions", "defend", "defend_dataset"), "ldmdata.defend.runner")
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
