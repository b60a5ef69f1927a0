"""Input-purification defences: alone (``ldmdata defend``) or as a step before an edit."""

from ldmdata.defend.runner import DefendOptions, defend, defend_dataset
from ldmdata.purify import DEFAULTS, METHODS, Defence, Defender, make_defence, parse_defence

__all__ = [
    "DEFAULTS",
    "METHODS",
    "DefendOptions",
    "Defence",
    "Defender",
    "defend",
    "defend_dataset",
    "make_defence",
    "parse_defence",
]
