"""IMPRESS's consistency purification (Cao et al., NeurIPS 2023; AAAAAAsuka/Impress).

Optimise the image ``x`` (in [-1, 1]) so that the VAE round trip reproduces it while it stays
close to the input ``x0``::

    min_x  ||D(E(x)) - x||^2 + weight * closeness(x, x0)

from ``x0 + N(0, init_noise)``, with Adam (eps 1e-5), a cosine learning rate down to 1e-5 and
``x`` clamped to [-1, 1] after each step, as the reference code does. ``closeness`` is
``lpips``: ``max(LPIPS_vgg(x, x0) - bound, 0)`` (the paper's hinge), used when torchvision's
VGG16 weights are on this machine; or the offline fallback ``l2``: the mean squared error
``||x - x0||^2 / n`` (no hinge: ``bound`` is in LPIPS units). The defence's parameters record
which one ran.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ldmdata.purify.diffusion import by_size
from ldmdata.seeds import derive_seed


def lpips_vgg(device: torch.device) -> torch.nn.Module:
    """LPIPS(VGG) from torchmetrics (bundled linear layers, torchvision's VGG16 backbone)."""
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="vgg").net.to(device).eval()


def impress(vae, images: list[Image.Image], keys: list[str], p: dict) -> list[Image.Image]:
    """Purify ``images`` with ``vae`` (the SD img2img model's AutoencoderKL)."""
    lpips = lpips_vgg(vae.device) if p["closeness"] == "lpips" else None
    out: list[Image.Image] = [None] * len(images)
    for _, members in by_size(images).items():
        result = _impress_batch(vae, [images[i] for i in members], [keys[i] for i in members],
                                p, lpips)
        for i, image in zip(members, result, strict=True):
            out[i] = image
    return out


def _impress_batch(vae, images, keys, p, lpips) -> list[Image.Image]:
    x0 = torch.stack([torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32))
                      for im in images]).permute(0, 3, 1, 2).to(vae.device) / 127.5 - 1
    start = torch.cat([torch.randn((1, *x0.shape[1:]), generator=torch.Generator("cpu")
                                   .manual_seed(derive_seed(p["seed"], "impress", k)))
                       for k in keys]).to(x0)
    x = (x0 + p["init_noise"] * start).to(vae.dtype).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=p["lr"], eps=1e-5)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, p["iterations"],
                                                          eta_min=1e-5)
    for _ in range(p["iterations"]):
        recon = vae(x).sample
        consistency = (recon.float() - x.float()).pow(2).flatten(1).mean(dim=1)
        if lpips is None:
            close = (x.float() - x0).pow(2).flatten(1).mean(dim=1)
        else:
            close = (lpips(x.float(), x0).flatten() - p["bound"]).clamp_min(0)
        loss = (consistency + p["weight"] * close).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            x.clamp_(-1, 1)
    pixels = ((x.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return [Image.fromarray(a, "RGB") for a in pixels.permute(0, 2, 3, 1).cpu().numpy()]
