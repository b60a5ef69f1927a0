"""Named attack targets (the study's modules) and resolution of any dotted module path."""

from __future__ import annotations

import re

import torch

from ldmdata.errors import LdmdataError

_BLOCK = "unet.down_blocks.1.attentions.0.transformer_blocks.0"

# name -> (module path, what it is). The unet.* ones are the study's down_blocks[1] modules.
NAMED_TARGETS: dict[str, tuple[str, str]] = {
    "vae.encoder": ("vae.encoder", "VAE encoder (image -> latent moments)"),
    "vae.quant_conv": ("vae.quant_conv", "VAE quantisation conv after the encoder"),
    "unet.self_attn": (f"{_BLOCK}.attn1", "UNet down_blocks[1] self-attention"),
    "unet.cross_attn": (f"{_BLOCK}.attn2", "UNet down_blocks[1] cross-attention"),
    "unet.ff": (f"{_BLOCK}.ff", "UNet down_blocks[1] feed-forward"),
    "unet.resnet": ("unet.down_blocks.1.resnets.0", "UNet down_blocks[1] first resnet"),
    "vae.post_quant_conv": ("vae.post_quant_conv", "VAE conv before the decoder"),
    "vae.decoder": ("vae.decoder", "VAE decoder (latent -> image)"),
}
ROOTS = ("vae", "unet", "text_encoder")


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
    """Fail early on a target that cannot be a module path at all (no model needed)."""
    path = module_path(target)
    if path.partition(".")[0] not in ROOTS or not re.fullmatch(r"[A-Za-z_][\w.]*", path):
        raise _unknown(target, f"paths start with {', '.join(ROOTS)}")


def describe_targets() -> list[tuple[str, str, str]]:
    """``(name, module path, description)`` for ``--list-targets``."""
    return [(name, path, text) for name, (path, text) in NAMED_TARGETS.items()]
