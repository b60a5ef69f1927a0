"""The attacks: the study's per-module BIM and PhotoGuard's encoder and diffusion attacks.

Each attack is an *objective* (a per-sample loss of the adversarial image, differentiable) and
one shared projected-gradient loop, :func:`attack_loop`, configured by :class:`AttackParams`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ldmdata.attacks.forward import EditBatch, EditForward, FeatureRecorder
from ldmdata.attacks.params import AttackParams
from ldmdata.errors import LdmdataError
from ldmdata.seeds import derive_seed


def compared_rows(feature_rows: str, n: int, blocks: tuple[str, ...]) -> slice:
    """The rows of a recorded output that the loss compares (``feature_rows`` of AttackParams).

    A guided output holds one block of ``n`` rows per guidance branch, in the pipeline's order
    (``blocks``: SD's ``torch.cat([latents] * 2)`` with ``cat([negative, prompt])`` embeddings
    is ``("uncond", "cond")``; InstructPix2Pix's is ``("cond", "image", "uncond")``). Without
    guidance (``blocks == ()``) each sample has one row, which every choice compares.
    """
    if not blocks or feature_rows == "both":
        return slice(None)
    k = blocks.index(feature_rows)
    return slice(k * n, (k + 1) * n)


def per_sample_mse(adv: list[torch.Tensor], clean: list[torch.Tensor], n: int,
                   rows: slice = slice(None)) -> torch.Tensor:
    """Sum over recorded calls of each sample's MSE(adversarial, clean) features: shape ``[n]``.

    Each call's output is cut to ``rows`` (see :func:`compared_rows`), which hold ``k * n``
    rows (``k`` blocks of ``n`` samples); sample ``i``'s MSE is the mean over its ``k`` rows
    and their features. With one sample and the unconditional rows this is the study's
    ``sum(mse_loss(feature_out[0], clean_feature[0]))``; ``both`` (k = 2) averages the
    unconditional and conditional rows' MSEs.
    """
    if len(adv) != len(clean):
        raise RuntimeError(f"{len(adv)} recorded calls against {len(clean)} clean ones")
    total = torch.zeros(n, device=clean[0].device)
    for a, c in zip(adv, clean, strict=True):
        a, c = a[rows], c[rows]
        if a.shape[0] % n:
            raise RuntimeError(f"an output of {a.shape[0]} rows for {n} samples")
        diff = (a.float() - c.float()).reshape(a.shape[0] // n, n, -1)
        total = total + diff.pow(2).mean(dim=(0, 2))
    return total


class Objective(ABC):
    """A per-sample loss of the adversarial image; ``rep`` indexes gradient repeats (EOT)."""

    @abstractmethod
    def __call__(self, x_adv: torch.Tensor, iteration: int, rep: int) -> torch.Tensor:
        """The loss of each sample in ``x_adv`` (shape ``[B]``), differentiable."""

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """The loss of ``x`` with the edit's own seed (for the stored image)."""
        return self(x, 0, 0)


class FeatureDistortion(Objective):
    """The study's loss: sum over every call of ``module`` of MSE(features, clean features).

    ``feature_rows`` picks the guidance rows of a UNet module's output that are compared
    (:func:`compared_rows`; the study: ``uncond``). The clean reference is computed here, per
    sample, from this batch's own clean images (the released notebook kept one reference list
    across images: a defect we do not copy).
    """

    def __init__(self, forward: EditForward, batch: EditBatch, module: torch.nn.Module,
                 stop: tuple[int, int], x_clean: torch.Tensor, feature_rows: str):
        self.forward, self.batch = forward, batch
        self.rows = compared_rows(feature_rows, len(batch), forward.row_blocks(module))
        self.recorder = FeatureRecorder(module, stop)
        self.embeds = forward.prompt_embeds(batch.prompts)
        with torch.no_grad(), self.recorder:
            forward.run(x_clean, batch, self.recorder, self.embeds)
        self.clean = [o.detach() for o in self.recorder.outputs]

    def __call__(self, x_adv, iteration, rep):
        with self.recorder:
            self.forward.run(x_adv, self.batch, self.recorder, self.embeds)
        outputs, self.recorder.outputs = self.recorder.outputs, []
        return per_sample_mse(outputs, self.clean, len(self.batch), self.rows)


def pattern_image(size: tuple[int, int]) -> torch.Tensor:
    """``1 x 3 x H x W`` in {0, 1}: a black-and-white texture (16 px checks, 4 px diagonal
    stripes, and their XOR), an offline stand-in for Mist's ``MIST.png`` target."""
    yy, xx = torch.meshgrid(torch.arange(size[1]), torch.arange(size[0]), indexing="ij")
    checks = (xx // 16 + yy // 16) % 2
    stripes = (xx + yy) // 4 % 2
    return torch.stack([checks ^ stripes, checks, stripes])[None].float()


def load_target_image(spec: str, size: tuple[int, int]) -> torch.Tensor:
    """``1 x 3 x H x W`` in [0, 1]: mid-gray for ``gray``/``zeros``, :func:`pattern_image`
    for ``pattern``, else the file resized."""
    if spec in ("gray", "zeros"):
        return torch.full((1, 3, size[1], size[0]), 0.5)
    if spec == "pattern":
        return pattern_image(size)
    try:
        image = Image.open(Path(spec)).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    except OSError as err:
        raise LdmdataError(f"cannot read target image {spec}: {err}") from None
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255


class EncoderAttack(Objective):
    """PhotoGuard's encoder attack: ``||E(x).mean - target||_2`` per sample, minimised.

    ``E`` sees what the pipeline encodes (for inpainting, the masked image). The target is the
    zero latent (``zeros``) or the latent mean of a target image.
    """

    def __init__(self, forward: EditForward, batch: EditBatch, target_image: str,
                 size: tuple[int, int]):
        self.forward, self.batch = forward, batch
        with torch.no_grad():
            if target_image == "zeros":
                self.target = None
            else:
                image = load_target_image(target_image, size).to(forward.device)
                self.target = self._mean(2 * image - 1)

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward.vae.encode(x.to(self.forward.dtype)).latent_dist.mean.float()

    def __call__(self, x_adv, iteration, rep):
        mean = self._mean(self.forward.model_inputs(x_adv, self.batch))
        diff = mean if self.target is None else mean - self.target
        return diff.flatten(1).norm(dim=1)


class DiffusionAttack(Objective):
    """PhotoGuard's diffusion attack: ``||edit(x) - target||_2`` through the whole edit.

    The edit is the full forward (all steps + decode); the target is in the decoder's [-1, 1]
    space (``zeros``/``gray``: the zero tensor, a mid-gray image). With ``grad_reps`` > 1 each
    iteration and repeat draws fresh editing noise (PhotoGuard's expectation over noise);
    otherwise the edit's own seed is used throughout.
    """

    def __init__(self, forward: EditForward, batch: EditBatch, params: AttackParams,
                 keys: list[str], size: tuple[int, int]):
        self.forward, self.batch, self.params, self.keys = forward, batch, params, keys
        self.embeds = forward.prompt_embeds(batch.prompts)
        image = load_target_image(params.target_image, size).to(forward.device)
        self.target = 2 * image - 1

    def __call__(self, x_adv, iteration, rep):
        batch = self.batch
        if self.params.grad_reps > 1:
            seeds = [derive_seed(self.params.seed, k, iteration, rep) for k in self.keys]
            batch = replace(batch, seeds=seeds)
        decoded = self.forward.run(x_adv, batch, embeds=self.embeds).float()
        return (decoded - self.target).flatten(1).norm(dim=1)

    @torch.no_grad()
    def evaluate(self, x):
        decoded = self.forward.run(x, self.batch, embeds=self.embeds).float()
        return (decoded - self.target).flatten(1).norm(dim=1)


@dataclass
class LoopResult:
    x_adv: torch.Tensor  # B x 3 x H x W in [0, 1]
    losses: torch.Tensor  # B x iterations: the loss at each iteration, before its step


def start_point(x: torch.Tensor, p: AttackParams, gens: list[torch.Generator],
                region: torch.Tensor | None) -> torch.Tensor:
    """The first adversarial image: clean + Gaussian / uniform noise (or clean), in [0, 1]."""
    if p.start == "clean":
        return x.clone()
    shape = (1, *x.shape[1:])
    if p.start == "gaussian":
        noise = torch.cat([torch.randn(shape, generator=g) * p.start_std for g in gens])
    else:
        noise = torch.cat([(torch.rand(shape, generator=g) * 2 - 1) * p.eps for g in gens])
    noise = noise.to(x)
    if region is not None:
        noise = noise * region
    return (x + noise).clamp(0, 1)


def project(x: torch.Tensor, x_new: torch.Tensor, p: AttackParams,
            region: torch.Tensor | None) -> torch.Tensor:
    """Back into the eps ball around ``x`` (L-inf or L2), the kept region and [0, 1]."""
    delta = x_new - x
    if region is not None:
        delta = delta * region
    if p.norm == "linf":
        delta = delta.clamp(-p.eps, p.eps)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (p.eps / norms).clamp(max=1.0).view(-1, 1, 1, 1)
    return (x + delta).clamp(0, 1)


def attack_loop(x: torch.Tensor, objective: Objective, p: AttackParams,
                gens: list[torch.Generator], region: torch.Tensor | None = None) -> LoopResult:
    """Projected gradient steps on ``objective`` (maximised for bim, minimised for PhotoGuard).

    L-inf: a sign step (bim first normalises the gradient by its mean absolute value, as the
    study does); L2: a step along the unit-norm gradient. Each step is projected by
    :func:`project`; PhotoGuard's step shrinks linearly to step/100 with ``step_decay``.
    """
    direction = 1.0 if p.maximize else -1.0
    x = x.detach()
    x_adv = start_point(x, p, gens, region)
    trace = []
    for i in range(p.iterations):
        x_adv.requires_grad_(True)
        grad = torch.zeros_like(x)
        loss_sum = torch.zeros(x.shape[0], device=x.device)
        for rep in range(p.grad_reps):
            loss = objective(x_adv, i, rep)
            (g,) = torch.autograd.grad(loss.sum(), x_adv)
            grad += g
            loss_sum += loss.detach()
        trace.append(loss_sum / p.grad_reps)
        grad /= p.grad_reps
        step = p.step_size
        if p.step_decay:
            step = p.step_size - (p.step_size - p.step_size / 100) * i / p.iterations
        with torch.no_grad():
            if p.norm == "linf":
                if p.method == "bim":
                    scale = grad.abs().flatten(1).mean(dim=1).clamp_min(1e-30)
                    grad = grad / scale.view(-1, 1, 1, 1)
                x_new = x_adv + direction * step * grad.sign()
            else:
                norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                x_new = x_adv + direction * step * grad / norms
            x_adv = project(x, x_new, p, region)
    return LoopResult(x_adv.detach(), torch.stack(trace, dim=1))


def quantize(x: torch.Tensor, x_adv: torch.Tensor, p: AttackParams) -> torch.Tensor:
    """8-bit ``x_adv`` (as uint8 values in a float tensor), stored as ``p.storage`` says.

    ``round``: ``x`` is exactly k/255 (it came from a PNG); round the perturbation and keep it
    in the eps ball: L-inf caps it at ``floor(eps * 255)``, L2 truncates toward zero where
    rounding leaves the ball. ``truncate``: the study's ``ToPILImage`` on a float tensor,
    ``x_adv.mul(255).byte()``, i.e. ``floor(x_adv * 255)``, whatever the ball.
    """
    if p.storage == "truncate":
        return torch.floor(x_adv.float().clamp(0, 1) * 255)
    base = torch.round(x * 255)
    delta = (x_adv - x) * 255
    rounded = torch.round(delta)
    if p.norm == "linf":
        cap = float(np.floor(p.eps * 255 + 1e-6))
        rounded = rounded.clamp(-cap, cap)
    else:
        outside = rounded.flatten(1).norm(dim=1) > p.eps * 255
        rounded = torch.where(outside.view(-1, 1, 1, 1), torch.trunc(delta), rounded)
    return (base + rounded).clamp(0, 255)
