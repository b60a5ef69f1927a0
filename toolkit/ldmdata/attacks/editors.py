"""Which editing model an attack targets on each dataset task, and which settings it reads.

A dataset task's own editor is the default (img2img, inpaint, and the x4 ``upscale``r for
``sr``, whose low-res ``lr`` column is the attacked image); InstructPix2Pix (``ip2p``) can be
attacked on img2img datasets instead.
"""

from __future__ import annotations

from ldmdata.errors import LdmdataError

EDITORS = ("img2img", "inpaint", "upscale", "ip2p")
# The editors an attack can target on each dataset task; the first is the default.
EDITORS_FOR = {"img2img": ("img2img", "ip2p"), "inpaint": ("inpaint",), "sr": ("upscale",)}
# The dataset column holding the image that is attacked.
# The edit settings each editor's pipeline reads.
EDIT_SETTINGS = ("num_inference_steps", "strength", "guidance_scale", "image_guidance_scale",
                 "noise_level", "eta")
USED_BY = {
    "img2img": ("num_inference_steps", "strength", "guidance_scale", "eta"),
    "inpaint": ("num_inference_steps", "strength", "guidance_scale", "eta"),
    "upscale": ("num_inference_steps", "guidance_scale", "noise_level", "eta"),
    "ip2p": ("num_inference_steps", "guidance_scale", "image_guidance_scale", "eta"),
}


def pick_editor(task: str, editor: str | None) -> str:
    """``editor``, or the task's own; LdmdataError when it cannot edit ``task`` datasets."""
    if task not in EDITORS_FOR:
        raise LdmdataError(
            f"a {task!r} dataset cannot be attacked; attacks need an img2img, inpaint or sr "
            "dataset"
        )
    if editor is None:
        return EDITORS_FOR[task][0]
    if editor not in EDITORS:
        raise LdmdataError(f"unknown editor {editor!r}; choose one of: {', '.join(EDITORS)}")
    if editor not in EDITORS_FOR[task]:
        raise LdmdataError(f"editor {editor} cannot be attacked on a {task} dataset; use "
                           f"{' or '.join(EDITORS_FOR[task])}")
    return editor


def check_for_editor(method: str, editor: str, mask_aware: bool, given: set[str]) -> None:
    """One clear line for settings or methods the editor has no use for.

    ``given``: the parameter names the user set (a preset's values are never refused).
    """
    if method == "photoguard-encoder" and editor == "upscale":
        raise LdmdataError("photoguard-encoder attacks the VAE encoder, which the x4 upscaler "
                           "never runs on the image; use photoguard-diffusion or bim")
    unused = [k for k in EDIT_SETTINGS if k in given and k not in USED_BY[editor]]
    if unused:
        raise LdmdataError(f"the {editor} editor does not read {', '.join(unused)} (it reads "
                           f"{', '.join(USED_BY[editor])})")
    if mask_aware and editor != "inpaint":
        raise LdmdataError(f"mask_aware is for inpainting; the {editor} editor has no mask")
