"""Adversarial attacks on Stable Diffusion editing: the study's per-module BIM and PhotoGuard.

``forward`` differentiates through the editing pipeline's components, ``targets`` names the
hookable modules, ``methods`` holds the objectives and the projected-gradient loop, ``params``
the presets, and ``runner`` attacks a whole dataset into a new, versioned one. The names below
load on first use, so ``ldmdata.attacks.params`` (what the CLI's help needs) stays free of torch.
"""

from ldmdata.lazy import lazy_exports

_LAZY = {
    **dict.fromkeys(("EditBatch", "EditForward", "EditSettings"), "ldmdata.attacks.forward"),
    **dict.fromkeys(("METHODS", "PRESETS", "AttackParams", "resolve_params"),
                    "ldmdata.attacks.params"),
    **dict.fromkeys(("RunOptions", "attack", "attack_dataset", "attack_from_params"),
                    "ldmdata.attacks.runner"),
    **dict.fromkeys(("NAMED_TARGETS", "describe_targets", "resolve_target"),
                    "ldmdata.attacks.targets"),
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
