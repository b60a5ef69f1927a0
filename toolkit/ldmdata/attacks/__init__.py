"""Adversarial attacks on Stable Diffusion editing: the study's per-module BIM, PhotoGuard,
and the field's protections (AdvDM, Mist, SDS(+/-), SDST, DiffusionGuard).

``forward`` differentiates through the editing pipeline's components, ``targets`` names the
hookable modules, ``methods`` holds the study's and PhotoGuard's objectives and the
projected-gradient loop, ``protections`` the other objectives, ``params`` the presets, and
``runner`` attacks a whole dataset into a new, versioned one.
"""

from ldmdata.attacks.forward import EditBatch, EditForward, EditSettings
from ldmdata.attacks.params import METHODS, PRESETS, AttackParams, resolve_params
from ldmdata.attacks.runner import RunOptions, attack, attack_dataset, attack_from_params
from ldmdata.attacks.targets import NAMED_TARGETS, describe_targets, resolve_target

__all__ = [
    "METHODS",
    "NAMED_TARGETS",
    "PRESETS",
    "AttackParams",
    "EditBatch",
    "EditForward",
    "EditSettings",
    "RunOptions",
    "attack",
    "attack_dataset",
    "attack_from_params",
    "describe_targets",
    "resolve_params",
    "resolve_target",
]
