"""A differentiable img2img / inpainting forward built from a diffusers pipeline's components.

A pipeline's ``__call__`` runs under ``torch.no_grad``, so attacks cannot use it.
:class:`EditForward` runs the same computation step by step (prompt embeddings, VAE encode
with the posterior sample, scheduler noise, classifier-free-guided denoising, VAE decode) with
gradients, drawing every random number from per-sample generators in the pipeline's order, so
without gradients and with the same seed it reproduces the pipeline's output
(``tests/test_attack_forward.py``).

The forward is cut into stages: ``0`` encodes the image, ``1..n`` are the denoising steps and
``n+1`` decodes. A :class:`FeatureRecorder` hooked on a module records its outputs and can stop
the forward right after the last call the loss needs (see :func:`plan_stop`), so a VAE-encoder
target never runs the UNet and a UNet target never decodes.

:class:`DiffusionForward` is what every editor's forward shares; ``forward_editors`` adds the
x4 upscaler's and InstructPix2Pix's on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor

from ldmdata.errors import LdmdataError

TASKS = ("img2img", "inpaint")


@dataclass(frozen=True)
class EditSettings:
    """The editing call being attacked (the pipeline's own argument names and meanings)."""

    num_inference_steps: int = 15
    strength: float = 0.7
    guidance_scale: float = 7.5
    eta: float = 0.0
    image_guidance_scale: float = 1.5  # InstructPix2Pix only
    noise_level: int = 20  # x4 upscaler only


@dataclass
class EditBatch:
    """What one forward needs besides the image: prompts, masks and per-sample seeds.

    ``repaint`` (inpainting only) is ``B x 1 x H x W`` in {0, 1}, 1 where the model repaints
    (the pipeline's ``mask_image``). ``seeds[i]`` seeds sample i's generator, as
    ``generator=torch.Generator().manual_seed(seeds[i])`` does for a pipeline call.
    """

    prompts: list[str]
    seeds: list[int]
    repaint: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.prompts)


class StopForward(Exception):
    """Raised by a recorder once the loss has everything it needs."""


class FeatureRecorder:
    """Forward hook on one module: records its outputs per stage and can stop the forward.

    ``stop`` is ``(stage, calls)``: raise :class:`StopForward` right after the ``calls``-th call
    in ``stage``. Recording is on only inside :meth:`EditForward.run` (not during the backward
    recomputation of gradient checkpointing).
    """

    def __init__(self, module: torch.nn.Module, stop: tuple[int, int] | None = None):
        self.module = module
        self.stop = stop
        self.outputs: list[torch.Tensor] = []
        self.counts: Counter = Counter()
        self.stage = -1
        self.active = False
        self._handle = None

    def __enter__(self) -> FeatureRecorder:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def reset(self) -> None:
        self.outputs, self.counts, self.stage = [], Counter(), -1

    def enter_stage(self, stage: int) -> None:
        if self.stop is not None and stage > self.stop[0]:
            raise StopForward
        self.stage = stage

    def _hook(self, module, args, output) -> None:
        if not self.active:
            return
        self.outputs.append(first_tensor(output))
        self.counts[self.stage] += 1
        if self.stop is not None and self.stop == (self.stage, self.counts[self.stage]):
            raise StopForward


def first_tensor(output) -> torch.Tensor:
    """A module's output tensor (the first one when it returns a tuple or a ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, dict) else output
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise LdmdataError(f"the hooked module returned no tensor ({type(output).__name__})")


class DiffusionForward(ABC):
    """What every differentiable editing forward shares: settings, prompts, seeds, stages.

    A subclass sets ``task`` and ``in_channels`` (the UNet input channels its editor needs)
    and implements :meth:`_timesteps` and :meth:`_run`.
    """

    task: str
    in_channels: int

    def __init__(self, pipe, settings: EditSettings):
        self.pipe, self.settings = pipe, settings
        self.vae, self.unet = pipe.vae, pipe.unet
        self.device, self.dtype = self.unet.device, self.unet.dtype
        self.scaling = self.vae.config.scaling_factor
        self.cfg = self._uses_guidance()
        if self.unet.config.time_cond_proj_dim is not None:
            raise LdmdataError("guidance-embedding UNets (time_cond_proj_dim) are not supported")
        if self.unet.config.in_channels != self.in_channels:
            raise LdmdataError(
                f"a {self.task} model needs a UNet with {self.in_channels} input channels; this "
                f"one has {self.unet.config.in_channels}"
            )
        self.timesteps, self.n_steps = self._timesteps(self.new_scheduler())
        self._embeds: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # The UNet batch under guidance: one block of rows per branch, in the pipeline's order.
    guidance_blocks: tuple[str, ...] = ("uncond", "cond")

    def _uses_guidance(self) -> bool:
        """Whether the pipeline runs classifier-free guidance with these settings."""
        return self.settings.guidance_scale > 1

    # -- fixed per batch ---------------------------------------------------------------------
    def new_scheduler(self):
        """A fresh scheduler like the pipeline's (schedulers keep per-run state, e.g. PNDM's)."""
        return type(self.pipe.scheduler).from_config(self.pipe.scheduler.config)

    @abstractmethod
    def _timesteps(self, scheduler) -> tuple[torch.Tensor, int]:
        """The pipeline's timesteps on ``scheduler`` (set up for a run) and their count."""

    def schedule(self):
        """A fresh scheduler set up for this edit, and the edit's timesteps."""
        scheduler = self.new_scheduler()
        return scheduler, self._timesteps(scheduler)[0]

    @property
    def n_stages(self) -> int:
        """Encode + one stage per denoising step + decode."""
        return len(self.timesteps) + 2

    def _encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(cond, uncond)`` embeddings of one prompt, as the pipeline makes them."""
        return self.pipe.encode_prompt(prompt, self.device, 1, self.cfg)

    @torch.no_grad()
    def prompt_embeds(self, prompts: Sequence[str]) -> torch.Tensor:
        """``cat([uncond, cond])`` embeddings (or just cond without guidance), cached per prompt."""
        cond, uncond = self._cached_embeds(prompts)
        return torch.cat([uncond, cond]) if self.cfg else cond

    def _cached_embeds(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's ``(cond, uncond)`` embeddings (uncond None without guidance)."""
        for prompt in dict.fromkeys(prompts):
            if prompt not in self._embeds:
                self._embeds[prompt] = self._encode_prompt(prompt)
        cond = torch.cat([self._embeds[p][0] for p in prompts])
        if not self.cfg:
            return cond, None
        return cond, torch.cat([self._embeds[p][1] for p in prompts])

    def row_blocks(self, module: torch.nn.Module) -> tuple[str, ...]:
        """The blocks of rows ``module``'s output holds per sample (:attr:`guidance_blocks`).

        UNet modules under classifier-free guidance run on the guidance batch; VAE modules (and
        every module without guidance) see one row per sample: ``()``.
        """
        if self.cfg and any(m is module for m in self.unet.modules()):
            return self.guidance_blocks
        return ()

    def cond_embeds(self, prompts: Sequence[str]) -> torch.Tensor:
        """The conditional embeddings alone (no guidance), cached like :meth:`prompt_embeds`."""
        return self.prompt_embeds(prompts)[-len(prompts):]

    def generators(self, batch: EditBatch) -> list[torch.Generator]:
        return [torch.Generator("cpu").manual_seed(int(s)) for s in batch.seeds]

    def _start(self, batch: EditBatch, recorder: FeatureRecorder | None):
        """What every run starts with: the stage callback, a fresh scheduler, its timesteps
        and the per-sample generators."""
        stage = recorder.enter_stage if recorder is not None else (lambda i: None)
        scheduler = self.new_scheduler()
        timesteps, _ = self._timesteps(scheduler)
        return stage, scheduler, timesteps, self.generators(batch)

    # -- the forward ---------------------------------------------------------------------------
    def model_inputs(self, x01: torch.Tensor, batch: EditBatch) -> torch.Tensor:
        """The pixels (in [-1, 1]) the editor's first module sees."""
        return (2 * x01 - 1).to(self.dtype)

    def run(
        self,
        x01: torch.Tensor,
        batch: EditBatch,
        recorder: FeatureRecorder | None = None,
        embeds: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Edit ``x01`` (``B x 3 x H x W`` in [0, 1]); the VAE's raw decode, or None if stopped.

        ``embeds`` defaults to :meth:`prompt_embeds` of the batch's prompts.
        """
        if embeds is None:
            embeds = self.prompt_embeds(batch.prompts)
        if recorder is not None:
            recorder.reset()
            recorder.active = True
        try:
            return self._run(x01, batch, recorder, embeds)
        except StopForward:
            return None
        finally:
            if recorder is not None:
                recorder.active = False

    @abstractmethod
    def _run(self, x01, batch, recorder, embeds) -> torch.Tensor:
        """The forward proper; calls ``recorder.enter_stage`` at each stage."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The VAE's raw decode of the final latents (the pipeline's, before postprocessing)."""
        return self.vae.decode(latents / self.scaling, return_dict=False)[0]

    @staticmethod
    def postprocess(decoded: torch.Tensor) -> torch.Tensor:
        """The pipeline's ``output_type="pt"`` image: ``(decoded / 2 + 0.5).clamp(0, 1)``."""
        return (decoded / 2 + 0.5).clamp(0, 1)

    @property
    def vae_factor(self) -> int:
        """Pixels per latent side of the VAE (8 for SD, 4 for the x4 upscaler)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def input_factor(self) -> int:
        """Input pixels per latent side (the VAE factor, unless the image is not encoded)."""
        return self.vae_factor

    def output_size(self, x: torch.Tensor) -> tuple[int, int]:
        """``(width, height)`` of the edit of ``x`` (the decoder upsamples the latents)."""
        h, w = x.shape[-2:]
        return w // self.input_factor * self.vae_factor, h // self.input_factor * self.vae_factor

    def probe_size(self) -> int:
        """The smallest image side the VAE and UNet accept (for cheap structural probes)."""
        return self.input_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)


class EditForward(DiffusionForward):
    """Run a Stable Diffusion img2img or inpainting edit with gradients, stage by stage."""

    def __init__(self, pipe, task: str, settings: EditSettings):
        if task not in TASKS:
            raise LdmdataError(f"unknown editing task {task!r}; choose one of: {', '.join(TASKS)}")
        self.task = task
        self.in_channels = 9 if task == "inpaint" else 4
        super().__init__(pipe, settings)
        if self.n_steps < 1:
            raise LdmdataError(
                f"num_inference_steps {settings.num_inference_steps} with strength "
                f"{settings.strength} leaves no denoising step"
            )

    def _timesteps(self, scheduler) -> tuple[torch.Tensor, int]:
        """The pipeline's ``retrieve_timesteps`` + ``get_timesteps`` on ``scheduler``."""
        n = self.settings.num_inference_steps
        scheduler.set_timesteps(n, device=self.device)
        init = min(int(n * self.settings.strength), n)
        start = max(n - init, 0)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start * scheduler.order)
        return scheduler.timesteps[start * scheduler.order :], n - start

    def encode_sample(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        """Scaled latents ``(mean + std * noise) * scaling_factor`` as the pipeline samples them."""
        posterior = self.vae.encode(x).latent_dist
        return posterior.sample(generator=gens) * self.scaling

    def model_inputs(self, x01: torch.Tensor, batch: EditBatch) -> torch.Tensor:
        """The pixels (in [-1, 1]) the VAE encoder sees: the image, or the masked image."""
        x = (2 * x01 - 1).to(self.dtype)
        if self.task == "inpaint":
            x = x * (batch.repaint.to(x) < 0.5)
        return x

    def _run(self, x01, batch, recorder, embeds) -> torch.Tensor:
        stage, scheduler, timesteps, gens = self._start(batch, recorder)
        pipe = self.pipe
        n = len(batch)
        latent_t = timesteps[:1].repeat(n)

        stage(0)
        if self.task == "img2img":
            x = (2 * x01 - 1).to(self.dtype)
            image_latents = self.encode_sample(x, gens)
            noise = randn_tensor(image_latents.shape, gens, self.device, self.dtype)
            latents = scheduler.add_noise(image_latents, noise, latent_t)
        else:
            latents = self._inpaint_latents(x01, gens, scheduler, latent_t)
            repaint = batch.repaint.to(self.device, torch.float32)
            masked = self.model_inputs(x01, batch)
            masked_latents = self.encode_sample(masked, gens)
            mask = F.interpolate(repaint, size=masked_latents.shape[-2:]).to(self.dtype)
            copies = 2 if self.cfg else 1
            extra = torch.cat([torch.cat([mask] * copies), torch.cat([masked_latents] * copies)], 1)

        step_kwargs = pipe.prepare_extra_step_kwargs(gens, self.settings.eta)
        for i, t in enumerate(timesteps):
            stage(1 + i)
            model_in = torch.cat([latents] * 2) if self.cfg else latents
            model_in = scheduler.scale_model_input(model_in, t)
            if self.task == "inpaint":
                model_in = torch.cat([model_in, extra], dim=1)
            noise_pred = self.unet(model_in, t, encoder_hidden_states=embeds, return_dict=False)[0]
            if self.cfg:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + self.settings.guidance_scale * (cond - uncond)
            latents = scheduler.step(noise_pred, t, latents, **step_kwargs, return_dict=False)[0]

        stage(len(timesteps) + 1)
        return self.decode(latents)

    def _inpaint_latents(self, x01, gens, scheduler, latent_t) -> torch.Tensor:
        """The inpainting pipeline's ``prepare_latents`` (noise, or image latents + noise)."""
        n, _, h, w = x01.shape
        f = self.vae_factor
        shape = (n, self.vae.config.latent_channels, h // f, w // f)
        if self.settings.strength == 1.0:
            noise = randn_tensor(shape, gens, self.device, self.dtype)
            return noise * scheduler.init_noise_sigma
        image_latents = self.encode_sample((2 * x01 - 1).to(self.dtype), gens)
        noise = randn_tensor(shape, gens, self.device, self.dtype)
        return scheduler.add_noise(image_latents, noise, latent_t)


def plan_stop(forward: DiffusionForward, module: torch.nn.Module, name: str) -> tuple[int, int]:
    """Where the forward can stop for a loss on ``module``: ``(last stage, calls in it)``.

    Found by one gradient-free run at the smallest valid size (call counts do not depend on
    the image size). A module that the image never reaches is a user error.
    """
    side = forward.probe_size()
    n = 1
    batch = EditBatch(prompts=[""], seeds=[0])
    if forward.task == "inpaint":
        batch.repaint = torch.zeros(n, 1, side, side)
        batch.repaint[..., : side // 2] = 1
    x = torch.full((n, 3, side, side), 0.5, device=forward.device)
    with torch.no_grad(), FeatureRecorder(module) as recorder:
        forward.run(x, batch, recorder)
    if not recorder.counts:
        raise LdmdataError(
            f"target {name} is not on the image's path through the {forward.task} forward "
            "(its output does not depend on the image)"
        )
    last = max(recorder.counts)
    return last, recorder.counts[last]
