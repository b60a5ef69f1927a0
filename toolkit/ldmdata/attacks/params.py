"""Attack parameters, the presets, and their validation.

Pixels are in [0, 1] throughout (PhotoGuard's, Mist's and DiffusionGuard's published numbers
are in [-1, 1] or 0-255 and are converted here). ``paper`` is the study's setting
(seed-paper.md); ``photoguard`` is PhotoGuard's published defaults (its notebooks and official
demo, MadryLab/photoguard); ``advdm``, ``mist``, ``sds`` and ``diffusionguard`` are the
published defaults of the protections in :mod:`ldmdata.attacks.protections`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ldmdata.attacks.editors import check_for_editor, pick_editor
from ldmdata.errors import LdmdataError

METHODS = ("bim", "photoguard-encoder", "photoguard-diffusion",
           "advdm", "mist", "sds-plus", "sds-minus", "sdst", "diffusionguard")
PRESETS = ("paper", "photoguard",
           "advdm", "mist", "sds", "diffusionguard")
NORMS = ("linf", "l2")
STARTS = ("gaussian", "uniform", "clean")
TARGET_IMAGES = ("zeros", "gray", "pattern")
FEATURE_ROWS = ("uncond", "cond", "both")
STORAGES = ("round", "truncate")
# The methods that push their objective up (the others pull it down).
MAXIMIZED = ("bim", "advdm", "mist", "sds-plus", "diffusionguard")
# Each method's default preset (its authors' published setting).
DEFAULT_PRESETS = {
    "bim": "paper", "photoguard-encoder": "photoguard", "photoguard-diffusion": "photoguard",
    "advdm": "advdm", "mist": "mist", "sds-plus": "sds", "sds-minus": "sds", "sdst": "sds",
    "diffusionguard": "diffusionguard",
}
# Inpainting-only methods: they attack the masked-image conditioning of an inpainting model.
INPAINT_ONLY = ("diffusionguard",)


@dataclass(frozen=True)
class AttackParams:
    """Everything that decides an attack's result (all of it goes into the manifest).

    ``target`` is the hooked module for ``bim``; ``target_image`` what PhotoGuard pulls the
    image toward (``zeros``: the zero latent / the all-gray image, ``gray``: a mid-gray image,
    or an image file). ``start``: ``gaussian`` (clean + N(0, start_std), the study), ``uniform``
    (clean + U(-eps, eps), PhotoGuard's encoder attack) or ``clean``. ``step_decay`` shrinks the
    step linearly to step/100 over the run (PhotoGuard). ``grad_reps`` averages gradients over
    that many noise draws (PhotoGuard's diffusion attack; the Monte-Carlo samples of the
    protections). ``mask_aware`` perturbs only the region an inpainting model keeps. ``editor``
    is the attacked editing model (see :mod:`ldmdata.attacks.editors`). ``eot`` lists defences
    the attack expects (see ``ldmdata.attacks.eot``: canonical ``{method, params, bpda}``
    entries), each step averaging the loss over ``eot_samples`` draws of them.

    ``feature_rows``: which classifier-free-guidance rows a UNet-target feature loss (bim)
    compares: ``uncond`` is what the study's hook kept (``feature_out[0]``, the batch's first
    row), ``cond`` the prompt's branch, ``both`` the mean over the rows' MSEs (see
    :func:`ldmdata.attacks.methods.compared_rows`). Without guidance and for VAE targets a
    sample has one row, which every choice compares.

    ``storage``: how the adversarial image becomes 8 bits. ``round`` rounds the perturbation
    and stays inside the eps ball; ``truncate`` is the study's ``ToPILImage`` on a float tensor
    (``floor(x * 255)``: biased down, |delta| up to one level past eps, 26/255 at eps 0.1).

    The protections (:mod:`ldmdata.attacks.protections`) also read: ``attack_prompt``, the
    text they condition on (None: the pair's own prompt); ``t_min``/``t_max``, the training
    timesteps they draw from (inclusive); ``semantic_weight``, the weight of the diffusion
    loss against the textural one (Mist, SDST); ``mask_shrink``, DiffusionGuard's mask
    augmentation (largest erosion of the kept region, as a fraction of its equal-area radius).
    """

    method: str
    target: str | None
    eps: float
    iterations: int
    step_size: float
    norm: str = "linf"
    start: str = "gaussian"
    start_std: float = 0.1
    step_decay: bool = False
    grad_reps: int = 1
    mask_aware: bool = False
    target_image: str = "zeros"
    feature_rows: str = "uncond"
    storage: str = "round"
    num_inference_steps: int = 15
    strength: float = 0.7
    guidance_scale: float = 7.5
    eta: float = 0.0
    image_guidance_scale: float = 1.5  # InstructPix2Pix's pipeline default
    noise_level: int = 20  # the x4 upscaler's pipeline default
    editor: str | None = None  # the attacked model; resolve_params picks the task's own
    seed: int = 9209
    eot: tuple = ()
    eot_samples: int = 1
    attack_prompt: str | None = None
    t_min: int = 0
    t_max: int = 999
    semantic_weight: float = 1.0
    mask_shrink: float = 0.0

    @property
    def maximize(self) -> bool:
        """Whether the method pushes its objective up (BIM, AdvDM, ...) or pulls it down."""
        return self.method in MAXIMIZED

    def as_dict(self) -> dict:
        return asdict(self)


OVERRIDABLE = tuple(f.name for f in fields(AttackParams) if f.name not in ("method", "target"))


def _paper(method: str, task: str) -> dict:
    # The study's inpainting attack passed no strength (its diffusers had none): all 15 steps.
    # Its hook compared the unconditional rows; its truncating storage is opt-in (we round).
    return dict(
        eps=0.1, iterations=15, step_size=0.01, norm="linf", start="gaussian", start_std=0.1,
        step_decay=False, grad_reps=1, mask_aware=False,
        target_image="zeros", feature_rows="uncond", storage="round",
        num_inference_steps=15, strength=1.0 if task == "inpaint" else 0.7,
        guidance_scale=7.5, eta=0.0, seed=9209,
    )


def _photoguard(method: str, task: str) -> dict:
    base = _paper(method, task)
    if method == "photoguard-encoder" and task == "img2img":
        # demo_simple_attack_img2img: eps 0.06, step 0.02, 1000 iterations, ||E(x)|| -> 0.
        return {**base, "eps": 0.03, "step_size": 0.01, "iterations": 1000, "start": "uniform",
                "step_decay": True, "target_image": "zeros"}
    if method == "photoguard-encoder":
        # official demo (inpainting): eps 0.12, step 0.01, 200 iterations, toward a gray image.
        return {**base, "eps": 0.06, "step_size": 0.005, "iterations": 200, "start": "uniform",
                "step_decay": True, "target_image": "gray", "mask_aware": True}
    # demo_complex_attack_inpainting: L2 eps 16, step 1, 200 iterations, 10 gradient repeats,
    # 4 denoising steps, guidance 7.5, eta 1, toward the zero tensor (a gray image).
    return {**base, "norm": "l2", "eps": 8.0, "step_size": 0.5, "iterations": 200,
            "start": "clean", "grad_reps": 10, "num_inference_steps": 4, "eta": 1.0,
            "target_image": "zeros", "mask_aware": task == "inpaint"}


# The protections' presets. 0-255 budgets are divided by 255; budgets on [-1, 1] pixels halved.
_EPS16, _STEP1 = 16 / 255, 1 / 255


def _advdm(method: str, task: str) -> dict:
    """AdvDM (Liang et al., ICML 2023) as benchmarked by Diff-Protect (Xue et al., ICLR 2024).

    xavihart/Diff-Protect ``configs/attack/base.yaml`` (epsilon 16, alpha 1, steps 100, on
    0-255 pixels) with ``attack.mode='advdm' attack.g_mode='+'`` (README), run by advertorch's
    ``LinfPGDAttack`` (uniform random start); one draw of ``t ~ U[0, 1000)`` and noise per step
    (the LDM training loss, ``code/diff_mist.py``).
    """
    return {**_paper(method, task), "eps": _EPS16, "step_size": _STEP1, "iterations": 100,
            "start": "uniform", "grad_reps": 1, "t_min": 0, "t_max": 999,
            "mask_aware": task == "inpaint"}


def _mist(method: str, task: str) -> dict:
    """Mist v1.2 (Liang et al., 2023), psyker-team/mist ``mist_v3.py`` and ``mist_utils.py``.

    Fused mode 2 (the default): ``rate * semantic - textural`` with rate ``10 ** (1 + 3)``,
    epsilon 16, alpha 1 and 100 steps on 0-255 pixels, uniform random start (the masked
    ``LinfPGDAttack``), toward the ``MIST.png`` pattern (here the procedural ``pattern``).
    """
    return {**_advdm(method, task), "semantic_weight": 1e4, "target_image": "pattern"}


def _sds(method: str, task: str) -> dict:
    """SDS(+), SDS(-) and SDST(-) (Xue et al., "Toward effective protection against diffusion
    based mimicry through score distillation", ICLR 2024), xavihart/Diff-Protect.

    ``configs/attack/base.yaml``: epsilon 16, alpha 1, steps 100 (0-255 pixels), target_rate 5
    (SDST's weight of the SDS term against the textural one, target ``MIST.png``);
    ``code/attacks.py`` ``pgd_sds``: no random start, fixed step, ``t ~ U[0, 1000)``.
    """
    values = {**_paper(method, task), "eps": _EPS16, "step_size": _STEP1, "iterations": 100,
              "start": "clean", "grad_reps": 1, "t_min": 0, "t_max": 999,
              "mask_aware": task == "inpaint"}
    if method == "sdst":
        values.update(semantic_weight=5.0, target_image="pattern")
    return values


def _diffusionguard(method: str, task: str) -> dict:
    """DiffusionGuard (Choi et al., ICLR 2025), choi403/DiffusionGuard.

    ``config/diffusionguard.yaml``: eps 0.0627 and step 0.00392 on [-1, 1] pixels (8/255 and
    0.5/255 here), 800 iterations, one noise draw per step, the first timestep of a 4-step
    schedule from pure noise (strength 1); ``attacks/attack_diffusionguard.py``: the empty
    prompt, no guidance; ``attacks/common.py``: clean start, masks re-drawn every step by
    ``contour_shrink`` (here: a seeded erosion + shift, ``mask_shrink``, our approximation).
    """
    return {**_paper(method, task), "eps": 8 / 255, "step_size": 0.5 / 255, "iterations": 800,
            "start": "clean", "grad_reps": 1, "num_inference_steps": 4, "strength": 1.0,
            "attack_prompt": "", "mask_shrink": 0.5, "mask_aware": True}


_PRESETS = {
    "paper": (_paper, METHODS),
    "photoguard": (_photoguard, ("photoguard-encoder", "photoguard-diffusion")),
    "advdm": (_advdm, ("advdm",)),
    "mist": (_mist, ("mist",)),
    "sds": (_sds, ("sds-plus", "sds-minus", "sdst")),
    "diffusionguard": (_diffusionguard, ("diffusionguard",)),
}


def resolve_params(
    method: str, task: str, target: str | None = None, preset: str | None = None,
    overrides: dict | None = None,
) -> AttackParams:
    """The preset for ``method`` (:data:`DEFAULT_PRESETS` unless given) plus overrides.

    ``overrides`` maps :data:`OVERRIDABLE` names to values; None values are ignored.
    """
    if method not in METHODS:
        raise LdmdataError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if method in INPAINT_ONLY and task != "inpaint":
        raise LdmdataError(
            f"{method} attacks an inpainting model's masked-image conditioning; a {task} "
            "dataset has none (use advdm, mist or sds-*)"
        )
    preset = preset or DEFAULT_PRESETS[method]
    if preset not in PRESETS:
        raise LdmdataError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    build, methods = _PRESETS[preset]
    if method not in methods:
        fitting = " or ".join(dict.fromkeys(("paper", DEFAULT_PRESETS[method])))
        raise LdmdataError(f"preset {preset} is for {', '.join(methods)}; --method {method} "
                           f"takes --preset {fitting}")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(OVERRIDABLE))
    if unknown:
        raise LdmdataError(f"unknown attack param(s) {', '.join(unknown)}")
    if method == "bim" and not target:
        raise LdmdataError("--method bim needs --target (see ldmdata attack --list-targets)")
    if method != "bim" and target:
        raise LdmdataError(
            f"--target names a module for --method bim; {method} aims at --target-image"
        )
    editor = pick_editor(task, given.pop("editor", None))
    values = build(method, task)
    if "eot" in given:
        from ldmdata.attacks.eot import parse_eot  # eot imports the objectives, which need us

        given["eot"] = parse_eot(given["eot"])
    params = replace(AttackParams(method=method, target=target, editor=editor, **values),
                     **given)
    validate(params)
    check_for_editor(method, editor, params.mask_aware, set(given))
    return params


def validate(p: AttackParams) -> None:
    """One clear line for the first bad value."""
    checks = [
        (p.eps > 0, f"eps must be > 0, got {p.eps}"),
        (p.norm != "linf" or p.eps <= 1, f"an L-inf eps above 1 means no bound, got {p.eps}"),
        (p.iterations >= 1, f"iterations (--steps) must be >= 1, got {p.iterations}"),
        (p.step_size > 0, f"step size must be > 0, got {p.step_size}"),
        (p.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {p.norm!r}"),
        (p.start in STARTS, f"start must be one of {', '.join(STARTS)}, got {p.start!r}"),
        (p.feature_rows in FEATURE_ROWS,
         f"feature_rows must be one of {', '.join(FEATURE_ROWS)}, got {p.feature_rows!r}"),
        (p.storage in STORAGES,
         f"storage must be one of {', '.join(STORAGES)}, got {p.storage!r}"),
        (p.start_std >= 0, f"start_std must be >= 0, got {p.start_std}"),
        (p.grad_reps >= 1, f"grad_reps must be >= 1, got {p.grad_reps}"),
        (p.num_inference_steps >= 1,
         f"num_inference_steps must be >= 1, got {p.num_inference_steps}"),
        (0 < p.strength <= 1, f"strength must be in (0, 1], got {p.strength}"),
        (p.guidance_scale >= 0, f"guidance_scale must be >= 0, got {p.guidance_scale}"),
        (p.eta >= 0, f"eta must be >= 0, got {p.eta}"),
        (p.image_guidance_scale >= 0,
         f"image_guidance_scale must be >= 0, got {p.image_guidance_scale}"),
        (0 <= p.noise_level < 1000, f"noise_level must be in [0, 1000), got {p.noise_level}"),
        (p.seed >= 0, f"seed must be >= 0, got {p.seed}"),
        (isinstance(p.eot_samples, int) and p.eot_samples >= 1,
         f"eot_samples must be an integer >= 1, got {p.eot_samples!r}"),
        (p.eot or p.eot_samples == 1, "eot_samples needs eot (the defences to expect)"),
        (p.target_image in TARGET_IMAGES or Path(p.target_image).is_file(),
         f"target_image must be {' or '.join(TARGET_IMAGES)} or an image file, "
         f"got {p.target_image!r}"),
        (0 <= p.t_min <= p.t_max, f"need 0 <= t_min <= t_max, got {p.t_min} and {p.t_max}"),
        (p.semantic_weight >= 0, f"semantic_weight must be >= 0, got {p.semantic_weight}"),
        (0 <= p.mask_shrink <= 1, f"mask_shrink must be in [0, 1], got {p.mask_shrink}"),
    ]
    for ok, message in checks:
        if not ok:
            raise LdmdataError(message)
