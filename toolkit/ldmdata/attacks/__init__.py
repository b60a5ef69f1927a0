"""Adversarial attacks on Stable Diffusion editing: the study's per-module BIM, PhotoGuard,
and the field's protections (AdvDM, Mist, SDS(+/-), SDST, DiffusionGuard).

``forward`` differentiates through the editing pipeline's components (``forward_editors``:
the x4 upscaler and InstructPix2Pix; ``editors``: which model each dataset task attacks),
``targets`` names the hookable modules, ``methods`` holds the study's and PhotoGuard's
objectives and the projected-gradient loop, ``protections`` the other objectives, ``eot`` the
defences an attack can expect, ``params`` the presets, and ``runner`` attacks a whole dataset
(img2img, inpaint, or the low-res images of sr) into a new, versioned one.
"""

from ldmdata.attacks.forward import EditBatch, EditForward, EditSettings
from ldmdata.attacks.forward_editors import Pix2PixForward, UpscaleForward, make_forward
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
    "Pix2PixForward",
    "RunOptions",
    "UpscaleForward",
    "attack",
    "attack_dataset",
    "attack_from_params",
    "describe_targets",
    "make_forward",
    "resolve_params",
    "resolve_target",
]
