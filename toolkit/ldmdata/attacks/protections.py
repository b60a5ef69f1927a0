"""The protections of the field as objectives: AdvDM, Mist, SDS(+/-), SDST and DiffusionGuard.

Each is an :class:`~ldmdata.attacks.methods.Objective` on the pipeline's own components, run by
the shared projected-gradient loop; :data:`PROTECTIONS` registers them by method name (the
runner dispatches from it, the presets live in :mod:`ldmdata.attacks.params`).

The diffusion loss is the attacked model's training loss: ``z_0`` is the VAE posterior sample
of the image (scaled), ``t`` is uniform on ``[t_min, t_max]``, ``z_t`` the training forward
process (a DDPM scheduler built from the pipeline's scheduler config), and the loss the mean
squared error of the UNet's prediction against its target (the noise, or the velocity for
v-prediction models). For an inpainting model the UNet also sees the repaint mask and the
masked image's latents, as in its training. Every random draw (posterior noise, ``t``, noise,
DiffusionGuard's masks) comes from a generator seeded by ``(seed, pair, iteration, repeat)``,
so a pair gets the same draws in any batch. Conditioning: the pair's own prompt (the attacker
knows the edit's prompt, as in the study) unless ``attack_prompt`` is set; the papers used a
generic text (``a photo``/``a painting``; DiffusionGuard the empty prompt, its preset).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor

from ldmdata.attacks.forward import EditBatch, EditForward
from ldmdata.attacks.methods import Objective, derive_seed, load_target_image
from ldmdata.attacks.params import AttackParams
from ldmdata.errors import LdmdataError


def check_timesteps(pipe, params: AttackParams) -> None:
    """``t_max`` must be one of the model's training timesteps (before anything is written)."""
    steps = pipe.scheduler.config.num_train_timesteps
    if params.t_max >= steps:
        raise LdmdataError(f"t_max {params.t_max} is past this model's {steps} timesteps")


class Protection(Objective):
    """What the protections share: conditioning, seeded draws, the diffusion and textural terms.

    ``loss`` values are per sample; :meth:`evaluate` averages ``grad_reps`` draws of iteration 0
    (the draws of the trace's first entry), so a final loss and the clean loss are paired.
    """

    score_distillation = False  # drop the UNet's Jacobian (SDS)
    textural = False  # uses the latent of params.target_image

    def __init__(self, forward: EditForward, batch: EditBatch, params: AttackParams,
                 x: torch.Tensor, keys: list[str]):
        self.forward, self.batch, self.params, self.keys = forward, batch, params, keys
        prompts = batch.prompts
        if params.attack_prompt is not None:
            prompts = [params.attack_prompt] * len(batch)
        self.embeds = forward.cond_embeds(prompts)
        self.noising = DDPMScheduler.from_config(forward.pipe.scheduler.config)
        if self.textural:
            with torch.no_grad():
                size = (x.shape[-1], x.shape[-2])
                target = load_target_image(params.target_image, size).to(x).expand_as(x)
                inputs = forward.model_inputs(target, batch)
                mean = forward.vae.encode(inputs).latent_dist.mean
                self.target_latent = (mean * forward.scaling).float()

    def draws(self, iteration: int, rep: int) -> list[torch.Generator]:
        return [torch.Generator("cpu").manual_seed(
            derive_seed(self.params.seed, "draw", key, iteration, rep)) for key in self.keys]

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self(x, 0, rep) for rep in range(self.params.grad_reps)]).mean(0)

    def diffusion_term(self, x01: torch.Tensor, iteration: int, rep: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss of each sample, and the latent the edit encodes (for textures).

        With :attr:`score_distillation` the loss keeps its value but its gradient is the score
        distillation one, ``(prediction - target) dz_0/dx``: the UNet runs without gradients.
        """
        f, gens = self.forward, self.draws(iteration, rep)
        z0 = f.encode_sample((2 * x01 - 1).to(f.dtype), gens)
        encoded, extra = z0, None
        if f.task == "inpaint":
            encoded = f.encode_sample(f.model_inputs(x01, self.batch), gens)
            repaint = F.interpolate(self.batch.repaint.to(f.device, f.dtype), size=z0.shape[-2:])
            extra = torch.cat([repaint, encoded], dim=1)
        p = self.params
        t = torch.cat([torch.randint(p.t_min, p.t_max + 1, (1,), generator=g) for g in gens])
        t = t.to(f.device)
        noise = randn_tensor(z0.shape, gens, f.device, f.dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.score_distillation):
            source = z0.detach() if self.score_distillation else z0
            prediction, target = self._predict(source, noise, t, extra)
            residual = (prediction - target).float()
        loss = residual.pow(2).flatten(1).mean(dim=1)
        if self.score_distillation:
            surrogate = (residual.detach() * z0.float()).flatten(1).sum(dim=1)
            loss = loss.detach() + surrogate - surrogate.detach()
        return loss, encoded

    def _predict(self, z0, noise, t, extra) -> tuple[torch.Tensor, torch.Tensor]:
        z_t = self.noising.add_noise(z0, noise, t)
        model_in = z_t if extra is None else torch.cat([z_t, extra], dim=1)
        prediction = self.forward.unet(model_in, t, encoder_hidden_states=self.embeds,
                                       return_dict=False)[0]
        if self.noising.config.prediction_type == "v_prediction":
            return prediction, self.noising.get_velocity(z0, noise, t)
        return prediction, noise

    def texture(self, encoded: torch.Tensor) -> torch.Tensor:
        """Mist's textural loss: the summed squared distance to the target's latent."""
        return (encoded.float() - self.target_latent).pow(2).flatten(1).sum(dim=1)


class AdvDM(Protection):
    """AdvDM: the diffusion training loss, maximised through the VAE encoder (Liang et al.,
    "Adversarial example does good", ICML 2023)."""

    def __call__(self, x_adv, iteration, rep):
        return self.diffusion_term(x_adv, iteration, rep)[0]


class Mist(Protection):
    """Mist's fused loss ``semantic_weight * diffusion loss - textural loss``, maximised."""

    textural = True

    def __call__(self, x_adv, iteration, rep):
        loss, encoded = self.diffusion_term(x_adv, iteration, rep)
        return self.params.semantic_weight * loss - self.texture(encoded)


class ScoreDistillation(AdvDM):
    """SDS(+) / SDS(-): AdvDM's loss with the score-distillation gradient (Xue et al., ICLR
    2024); maximised for ``sds-plus``, minimised for ``sds-minus``. The value reported is the
    diffusion loss itself."""

    score_distillation = True


class SDST(Protection):
    """SDST(-): ``semantic_weight * SDS loss + textural loss``, minimised (Diff-Protect's
    ``using_target``)."""

    score_distillation = True
    textural = True

    def __call__(self, x_adv, iteration, rep):
        loss, encoded = self.diffusion_term(x_adv, iteration, rep)
        return self.params.semantic_weight * loss + self.texture(encoded)


class DiffusionGuard(Protection):
    """DiffusionGuard (Choi et al., ICLR 2025): the L2 norm of the inpainting UNet's noise
    prediction at the edit's first timestep, from pure noise, maximised.

    The image enters only through the masked image the UNet is conditioned on. Each iteration
    and repeat draws, per sample, an augmented mask (:meth:`augmented_repaint`); the stored
    loss (:meth:`evaluate`) uses the dataset's own mask.
    """

    def __init__(self, forward, batch, params, x, keys):
        if forward.task != "inpaint":
            raise LdmdataError("diffusionguard needs an inpainting model and dataset")
        super().__init__(forward, batch, params, x, keys)
        self.scheduler, timesteps = forward.schedule()
        self.t = timesteps[0]

    def __call__(self, x_adv, iteration, rep):
        return self.noise_norm(x_adv, iteration, rep, augment=self.params.mask_shrink > 0)

    @torch.no_grad()
    def evaluate(self, x):
        reps = range(self.params.grad_reps)
        return torch.stack([self.noise_norm(x, 0, rep, augment=False) for rep in reps]).mean(0)

    def noise_norm(self, x01, iteration, rep, augment: bool) -> torch.Tensor:
        f, gens = self.forward, self.draws(iteration, rep)
        repaint = self.batch.repaint.to(f.device, torch.float32)
        if augment:
            repaint = self.augmented_repaint(repaint, gens)
        masked = ((2 * x01 - 1) * (repaint < 0.5)).to(f.dtype)
        masked_latents = f.encode_sample(masked, gens)
        mask = F.interpolate(repaint, size=masked_latents.shape[-2:]).to(f.dtype)
        noise = randn_tensor(masked_latents.shape, gens, f.device, f.dtype)
        latents = self.scheduler.scale_model_input(noise * self.scheduler.init_noise_sigma, self.t)
        model_in = torch.cat([latents, mask, masked_latents], dim=1)
        t = self.t.repeat(len(gens))
        prediction = f.unet(model_in, t, encoder_hidden_states=self.embeds, return_dict=False)[0]
        return prediction.float().flatten(1).norm(dim=1)

    def augmented_repaint(self, repaint: torch.Tensor, gens: list[torch.Generator]
                          ) -> torch.Tensor:
        """Each sample's kept region eroded by ``k`` px and shifted by at most ``k`` px.

        ``k`` is uniform on ``0..round(mask_shrink * r)`` with ``r`` the radius of a disc of the
        kept area; erosion by ``k`` then a shift of at most ``k`` keeps the augmented region
        inside the kept one, as DiffusionGuard's ``contour_shrink`` does (its contour shrinks
        irregularly; ours is a box erosion, our approximation).
        """
        out = []
        for mask, g in zip(repaint, gens, strict=True):
            radius = math.sqrt(float((mask < 0.5).sum()) / math.pi)
            k = int(torch.randint(0, round(self.params.mask_shrink * radius) + 1, (1,),
                                  generator=g))
            dy, dx = (int(v) for v in torch.randint(-k, k + 1, (2,), generator=g))
            grown = F.max_pool2d(mask[None], 2 * k + 1, stride=1, padding=k)[0]
            out.append(shift(grown, dy, dx, fill=1.0))
        return torch.stack(out)


def shift(image: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """``image`` (``C x H x W``) moved by ``(dy, dx)`` px, uncovered pixels set to ``fill``."""
    h, w = image.shape[-2:]
    out = torch.full_like(image, fill)
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


# method name -> objective class (constructor: forward, batch, params, clean x, pair keys)
PROTECTIONS: dict[str, type[Protection]] = {
    "advdm": AdvDM,
    "mist": Mist,
    "sds-plus": ScoreDistillation,
    "sds-minus": ScoreDistillation,
    "sdst": SDST,
    "diffusionguard": DiffusionGuard,
}
