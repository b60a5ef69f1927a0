"""Editing settings: the study's ``paper`` preset, overrides, and which editor fits which data.

The preset is the study's generation setting (seed-paper.md): 100 denoising steps, strength 0.7,
guidance 7.5, seed 9209. Its inpainting edit passed no strength (the diffusers of the time had
none), which is strength 1.0 in today's pipeline. InstructPix2Pix and the x4 upscaler were not
part of the study's edits; they keep the pipelines' own defaults for their extra knobs
(image guidance 1.5, noise level 20).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ldmdata.errors import LdmdataError
from ldmdata.params import is_int, is_number

PRESETS = ("paper",)
EDITORS = ("img2img", "inpaint", "ip2p", "upscale")
# Editors that can edit each input task (the dataset kind). The first one is the default.
EDITORS_FOR = {
    "img2img": ("img2img", "ip2p"),
    "inpaint": ("inpaint", "img2img", "ip2p"),
    "sr": ("upscale",),
}
# The dataset column each task's editor reads.
# The settings each editor's pipeline takes (the rest are recorded but unused by it).
USED_BY = {
    "img2img": ("num_inference_steps", "strength", "guidance_scale", "eta", "seed"),
    "inpaint": ("num_inference_steps", "strength", "guidance_scale", "eta", "seed",
                "invert_mask"),
    "ip2p": ("num_inference_steps", "guidance_scale", "image_guidance_scale", "eta", "seed"),
    "upscale": ("num_inference_steps", "guidance_scale", "noise_level", "eta", "seed"),
}


@dataclass(frozen=True)
class EditParams:
    """Everything that decides an edit's pixels besides the model, image and prompt.

    ``invert_mask`` (inpainting): the dataset mask is 255 on the entity; inverted (the study),
    the model keeps the entity and repaints the background.
    """

    num_inference_steps: int = 100
    strength: float = 0.7
    guidance_scale: float = 7.5
    image_guidance_scale: float = 1.5
    noise_level: int = 20
    eta: float = 0.0
    seed: int = 9209
    invert_mask: bool = True

    def as_dict(self) -> dict:
        return asdict(self)

    def used(self, editor: str) -> dict:
        """Only the settings ``editor``'s pipeline reads (what a manifest should show)."""
        return {k: v for k, v in self.as_dict().items() if k in USED_BY[editor]}


OVERRIDABLE = tuple(f.name for f in fields(EditParams))


def default_editor(task: str) -> str:
    if task not in EDITORS_FOR:
        raise LdmdataError(
            f"cannot edit a {task!r} dataset; edits need an img2img, inpaint or sr dataset"
        )
    return EDITORS_FOR[task][0]


def check_editor(editor: str, task: str) -> None:
    if editor not in EDITORS:
        raise LdmdataError(f"unknown editor {editor!r}; choose one of: {', '.join(EDITORS)}")
    allowed = EDITORS_FOR[task]
    if editor not in allowed:
        raise LdmdataError(
            f"editor {editor} cannot edit a {task} dataset; use {' or '.join(allowed)}"
        )


def resolve_edit_params(
    editor: str, preset: str | None = None, overrides: dict | None = None
) -> EditParams:
    """The preset (``paper``) for ``editor`` plus ``overrides`` (None values are ignored)."""
    preset = preset or "paper"
    if preset not in PRESETS:
        raise LdmdataError(f"unknown edit preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if editor not in EDITORS:
        raise LdmdataError(f"unknown editor {editor!r}; choose one of: {', '.join(EDITORS)}")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(OVERRIDABLE))
    if unknown:
        raise LdmdataError(
            f"unknown edit param(s) {', '.join(unknown)}; known: {', '.join(OVERRIDABLE)}"
        )
    base = EditParams(strength=1.0) if editor == "inpaint" else EditParams()
    params = replace(base, **given)
    validate(params, editor)
    return params


def validate(p: EditParams, editor: str) -> None:
    """One clear line for the first bad value."""
    checks = [
        (is_int(p.num_inference_steps) and p.num_inference_steps >= 1,
         f"num_inference_steps must be an integer >= 1, got {p.num_inference_steps!r}"),
        (is_number(p.strength) and 0 < p.strength <= 1,
         f"strength must be in (0, 1], got {p.strength!r}"),
        (is_number(p.guidance_scale) and p.guidance_scale >= 0,
         f"guidance_scale must be >= 0, got {p.guidance_scale!r}"),
        (is_number(p.image_guidance_scale) and p.image_guidance_scale >= 0,
         f"image_guidance_scale must be >= 0, got {p.image_guidance_scale!r}"),
        (is_int(p.noise_level) and 0 <= p.noise_level <= 1000,
         f"noise_level must be an integer in [0, 1000], got {p.noise_level!r}"),
        (is_number(p.eta) and p.eta >= 0, f"eta must be >= 0, got {p.eta!r}"),
        (is_int(p.seed) and p.seed >= 0, f"seed must be an integer >= 0, got {p.seed!r}"),
        (isinstance(p.invert_mask, bool), f"invert_mask must be true or false, "
                                          f"got {p.invert_mask!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise LdmdataError(message)
    if "strength" in USED_BY[editor] and int(p.num_inference_steps * p.strength) < 1:
        raise LdmdataError(
            f"num_inference_steps {p.num_inference_steps} with strength {p.strength} leaves no "
            "denoising step"
        )

