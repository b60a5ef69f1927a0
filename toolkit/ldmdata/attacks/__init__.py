"""Adversarial attacks on Stable Diffusion editing: the study's per-module BIM, PhotoGuard,
and the field's protections (AdvDM, Mist, SDS(+/-), SDST, DiffusionGuard).

``forward`` differentiates through the editing pipeline's components (``forward_editors``:
the x4 upscaler and InstructPix2Pix; ``editors``: which model each dataset task attacks),
``targets`` names the hookable modules, ``methods`` holds the study's and PhotoGuard's
objectives and the projected-gradient loop, ``protections`` the other objectives, ``eot`` the
defences an attack can expect, ``params`` the presets, and ``runner`` attacks a whole dataset
(img2img, inpaint, or the low-res images of sr) into a new, versioned one. The names below load
on first use, so ``ldmdata.attacks.params`` (what the CLI's help needs) stays free of torch.
"""

from ldmdata.lazy import lazy_exports

_LAZY = {
    **dict.fromkeys(("EditBatch", "EditForward", "EditSettings"), "ldmdata.attacks.forward"),
    **dict.fromkeys(("Pix2PixForward", "UpscaleForward", "make_forward"),
                    "ldmdata.attacks.forward_editors"),
    **dict.fromkeys(("METHODS", "PRESETS", "AttackParams", "resolve_params"),
                    "ldmdata.attacks.params"),
    **dict.fromkeys(("RunOptions", "attack", "attack_dataset", "attack_from_params"),
                    "ldmdata.attacks.runner"),
    **dict.fromkeys(("NAMED_TARGETS", "describe_targets", "resolve_target"),
                    "ldmdata.attacks.targets"),
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
