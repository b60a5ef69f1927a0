"""Named attack targets (the study's modules) and resolution of any dotted module path.

The names are module paths that exist in every attacked editor's pipeline: SD-1.5 img2img and
inpainting, InstructPix2Pix (SD-1.5's UNet layout, 8 input channels) and the x4 upscaler
(whose UNet starts with a plain ``DownBlock2D``, so its ``down_blocks[1]`` is its first
cross-attention block, where SD-1.5's is its second; where a UNet sets
``only_cross_attention`` for a block, that block's ``attn1`` attends to the prompt too). The
upscaler never encodes its low-res input, so the VAE-encoder targets do not apply to it.
"""

from __future__ import annotations

import re

import torch

from ldmdata.attacks.editors import EDITORS
from ldmdata.errors import LdmdataError
from ldmdata.params import closest

_BLOCK = "unet.down_blocks.1.attentions.0.transformer_blocks.0"

# name -> (module path, what it is). The unet.* ones are the study's down_blocks[1] modules.
NAMED_TARGETS: dict[str, tuple[str, str]] = {
    "vae.encoder": ("vae.encoder", "VAE encoder (image -> latent moments)"),
    "vae.quant_conv": ("vae.quant_conv", "VAE quantisation conv after the encoder"),
    "unet.self_attn": (f"{_BLOCK}.attn1", "UNet down_blocks[1] self-attention"),
    "unet.cross_attn": (f"{_BLOCK}.attn2", "UNet down_blocks[1] cross-attention"),
    "unet.ff": (f"{_BLOCK}.ff", "UNet down_blocks[1] feed-forward"),
    "unet.resnet": ("unet.down_blocks.1.resnets.0", "UNet down_blocks[1] first resnet"),
    "unet.conv_in": ("unet.conv_in", "UNet input conv (latents + image conditioning)"),
    "vae.post_quant_conv": ("vae.post_quant_conv", "VAE conv before the decoder"),
    "vae.decoder": ("vae.decoder", "VAE decoder (latent -> image)"),
}
ROOTS = ("vae", "unet", "text_encoder")
# Module paths (and everything under them) that an editor never runs on the image.
OFF_PATH = {"upscale": ("vae.encoder", "vae.quant_conv")}


def module_path(target: str) -> str:
    """The dotted module path of a named target or of a path (``a[1]`` is read as ``a.1``)."""
    if target in NAMED_TARGETS:
        return NAMED_TARGETS[target][0]
    return re.sub(r"\[(\d+)\]", r".\1", target.strip())


def _unknown(target: str, why: str) -> LdmdataError:
    return LdmdataError(
        f"unknown target {target!r} ({why}); named targets: {', '.join(NAMED_TARGETS)}; "
        f"or a dotted module path under {', '.join(ROOTS)} (e.g. unet.mid_block.attentions.0)"
    )


def resolve_target(pipe, target: str) -> tuple[str, torch.nn.Module]:
    """``(module path, module)`` for ``target`` in ``pipe``; LdmdataError listing valid names."""
    path = module_path(target)
    root, _, rest = path.partition(".")
    if root not in ROOTS:
        raise _unknown(target, f"paths start with {', '.join(ROOTS)}")
    try:
        module = getattr(pipe, root)
        return path, module.get_submodule(rest) if rest else module
    except AttributeError:
        raise _unknown(target, f"no module {path} in this model") from None


def check_target_name(target: str) -> None:
    """Fail early (no model needed) on a target that cannot be a module path at all, or that
    is one edit away from a named target (``vae.encodr``: did you mean ``vae.encoder``?)."""
    path = module_path(target)
    if path.partition(".")[0] not in ROOTS or not re.fullmatch(r"[A-Za-z_][\w.]*", path):
        raise _unknown(target, f"paths start with {', '.join(ROOTS)}")
    close = closest(target, NAMED_TARGETS)
    if target not in NAMED_TARGETS and close and path not in KNOWN_PATHS:
        raise LdmdataError(f"unknown target {target!r}; did you mean {close}? "
                           "(ldmdata attack --list-targets)")


KNOWN_PATHS = {path for path, _ in NAMED_TARGETS.values()} | {"vae", "unet", "text_encoder"}


def off_path(path: str, editor: str) -> bool:
    """Whether ``editor`` never runs the module at ``path`` on the attacked image."""
    return any(path == p or path.startswith(p + ".") for p in OFF_PATH.get(editor, ()))


def check_target_for_editor(target: str, editor: str) -> None:
    """Fail early on a target that ``editor`` never runs on the image (no model needed)."""
    if off_path(module_path(target), editor):
        usable = [name for name, (path, _) in NAMED_TARGETS.items() if not off_path(path, editor)]
        raise LdmdataError(f"target {target} is not on the {editor} editor's path (it never "
                           f"encodes the image); targets for {editor}: {', '.join(usable)}")


def describe_targets() -> list[tuple[str, str, str, str]]:
    """``(name, module path, editors it applies to, description)`` for ``--list-targets``."""
    return [(name, path, ",".join(e for e in EDITORS if not off_path(path, e)), text)
            for name, (path, text) in NAMED_TARGETS.items()]
