"""Differentiable forwards of the x4 upscaler and InstructPix2Pix, and the forward per editor.

Both are built from the pipeline's components like :class:`~ldmdata.attacks.forward.EditForward`
and follow diffusers 0.42's ``StableDiffusionUpscalePipeline`` / ``StableDiffusionInstruct
Pix2PixPipeline.__call__`` line by line, drawing every random number in the pipeline's order
from per-sample generators, so without gradients and with the same seed they reproduce the
pipeline's ``output_type="pt"`` images (``tests/test_attack_forward_editors.py``). Stages are
as for img2img: ``0`` prepares the image conditioning (the upscaler noises the low-res image,
InstructPix2Pix encodes it), ``1..n`` are the denoising steps, ``n+1`` decodes.
"""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor

from ldmdata.attacks.forward import DiffusionForward, EditForward, EditSettings
from ldmdata.errors import LdmdataError


class UpscaleForward(DiffusionForward):
    """The x4 upscaler: the LR image (noised by ``low_res_scheduler`` at ``noise_level``) is
    concatenated to the latents, which live at the LR size; the decoder upsamples 4x.

    Draws, per sample: the LR noise, the initial latents, then the scheduler's step noise.
    The VAE never encodes the image, so VAE-encoder targets are not on its path. (In float16
    the pipeline decodes with an upcast VAE; this forward decodes in the model's dtype.)
    """

    task = "upscale"
    in_channels = 7

    def __init__(self, pipe, settings: EditSettings):
        super().__init__(pipe, settings)
        top = pipe.config.max_noise_level
        if not 0 <= settings.noise_level <= top:
            raise LdmdataError(f"noise_level must be in [0, {top}] for this upscaler, "
                               f"got {settings.noise_level}")

    def _timesteps(self, scheduler) -> tuple[torch.Tensor, int]:
        scheduler.set_timesteps(self.settings.num_inference_steps, device=self.device)
        return scheduler.timesteps, len(scheduler.timesteps)

    @property
    def input_factor(self) -> int:
        return 1  # the latents have the LR image's size

    def _run(self, x01, batch, recorder, embeds) -> torch.Tensor:
        stage, scheduler, timesteps, gens = self._start(batch, recorder)

        stage(0)
        image = self.model_inputs(x01, batch)
        level = torch.tensor([self.settings.noise_level], dtype=torch.long, device=self.device)
        noise = randn_tensor(image.shape, gens, self.device, self.dtype)
        image = self.pipe.low_res_scheduler.add_noise(image, noise, level)
        copies = 2 if self.cfg else 1
        image = torch.cat([image] * copies)
        class_labels = torch.cat([level] * image.shape[0])
        shape = (len(batch), self.vae.config.latent_channels, *image.shape[-2:])
        latents = randn_tensor(shape, gens, self.device, self.dtype) * scheduler.init_noise_sigma

        step_kwargs = self.pipe.prepare_extra_step_kwargs(gens, self.settings.eta)
        for i, t in enumerate(timesteps):
            stage(1 + i)
            model_in = torch.cat([latents] * copies)
            model_in = torch.cat([scheduler.scale_model_input(model_in, t), image], dim=1)
            noise_pred = self.unet(model_in, t, encoder_hidden_states=embeds,
                                   class_labels=class_labels, return_dict=False)[0]
            if self.cfg:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + self.settings.guidance_scale * (cond - uncond)
            latents = scheduler.step(noise_pred, t, latents, **step_kwargs, return_dict=False)[0]

        stage(len(timesteps) + 1)
        return self.decode(latents)


class Pix2PixForward(DiffusionForward):
    """InstructPix2Pix: the VAE posterior *mode* of the image (unscaled) is concatenated to
    pure-noise latents; three-way guidance over ``[text + image, image only, neither]``.

    Guidance runs when ``guidance_scale > 1`` and ``image_guidance_scale >= 1`` (the
    pipeline's rule); the prediction is ``uncond + g * (text - image) + g_img * (image -
    uncond)``. Draws, per sample: the initial latents, then the scheduler's step noise.
    """

    task = "ip2p"
    in_channels = 8
    guidance_blocks = ("cond", "image", "uncond")

    def _uses_guidance(self) -> bool:
        s = self.settings
        return s.guidance_scale > 1 and s.image_guidance_scale >= 1

    def _timesteps(self, scheduler) -> tuple[torch.Tensor, int]:
        scheduler.set_timesteps(self.settings.num_inference_steps, device=self.device)
        return scheduler.timesteps, len(scheduler.timesteps)

    def _encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        # The pipeline's _encode_prompt returns cat([cond, uncond, uncond]).
        embeds = self.pipe._encode_prompt(prompt, self.device, 1, self.cfg)
        return (embeds[:1], embeds[1:2]) if self.cfg else (embeds, None)

    @torch.no_grad()
    def prompt_embeds(self, prompts) -> torch.Tensor:
        """``cat([cond, uncond, uncond])`` (the pipeline's order), or cond without guidance."""
        cond, uncond = self._cached_embeds(prompts)
        return torch.cat([cond, uncond, uncond]) if self.cfg else cond

    def _run(self, x01, batch, recorder, embeds) -> torch.Tensor:
        stage, scheduler, timesteps, gens = self._start(batch, recorder)

        stage(0)
        image_latents = self.vae.encode(self.model_inputs(x01, batch)).latent_dist.mode()
        if self.cfg:
            image_latents = torch.cat([image_latents, image_latents,
                                       torch.zeros_like(image_latents)])
        shape = (len(batch), self.vae.config.latent_channels, *image_latents.shape[-2:])
        latents = randn_tensor(shape, gens, self.device, self.dtype) * scheduler.init_noise_sigma

        step_kwargs = self.pipe.prepare_extra_step_kwargs(gens, self.settings.eta)
        s = self.settings
        for i, t in enumerate(timesteps):
            stage(1 + i)
            model_in = torch.cat([latents] * 3) if self.cfg else latents
            model_in = torch.cat([scheduler.scale_model_input(model_in, t), image_latents], dim=1)
            noise_pred = self.unet(model_in, t, encoder_hidden_states=embeds,
                                   return_dict=False)[0]
            if self.cfg:
                text, image, uncond = noise_pred.chunk(3)
                noise_pred = (uncond + s.guidance_scale * (text - image)
                              + s.image_guidance_scale * (image - uncond))
            latents = scheduler.step(noise_pred, t, latents, **step_kwargs, return_dict=False)[0]

        stage(len(timesteps) + 1)
        return self.decode(latents)


def make_forward(pipe, editor: str, settings: EditSettings) -> DiffusionForward:
    """The differentiable forward of ``editor`` (img2img | inpaint | upscale | ip2p)."""
    if editor == "upscale":
        return UpscaleForward(pipe, settings)
    if editor == "ip2p":
        return Pix2PixForward(pipe, settings)
    return EditForward(pipe, editor, settings)
