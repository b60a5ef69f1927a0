"""Tiny random-init Stable Diffusion pipelines with the real diffusers classes.

Each builder writes one pipeline folder with ``save_pretrained`` (safetensors), so
``StableDiffusionImg2ImgPipeline.from_pretrained(folder)`` and friends load it offline. The
UNet keeps SD-1.x's block layout (three cross-attention down blocks, then a plain one), so the
study's hooked modules (``unet.down_blocks[1].attentions[0].transformer_blocks[0].attn1`` ...)
exist; the VAE keeps SD's four levels (8x downsampling). Widths are tiny: a whole pipeline is a
few MB and runs on a CPU at 64-512 px. :func:`sd15_components` builds the full-size SD-1.5
architecture (random weights, in memory) for speed measurements.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    EulerAncestralDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionUpscalePipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77
N_MERGES = 200

# A small caption-like corpus: enough for a few hundred BPE merges over real English words.
CORPUS = """
a photo of a cat sitting on a wooden table next to a cup of coffee
a dog running on the beach at sunset with waves in the background
a man riding a bicycle down a busy city street in the rain
two people walking in a park with trees and a small lake
a red car parked in front of a white house with a green door
a plate of food with vegetables rice and chicken on a kitchen counter
a bird standing on a branch of a tree in the snow
a train arriving at a station while people wait on the platform
a woman holding an umbrella on a street at night with lights
a bowl of fruit with apples bananas and oranges on a table
a giraffe standing in a field with trees under a blue sky
a group of people playing frisbee in a grassy field
a motorcycle parked in a parking space at night with a light rain beginning to fall
an airplane flying over mountains covered with snow and clouds
a boat on a river near a bridge in an old town
a child eating a slice of pizza at a restaurant
turn the sky into a sunset make it snow add a rainbow over the hills
a cozy living room with a sofa a lamp and a painting on the wall
""".split()


def _byte_alphabet() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = [], 0
    for byte in range(256):
        if byte in keep:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _learn_merges(words: list[str], n_merges: int) -> list[tuple[str, str]]:
    """Plain BPE over ``words`` with CLIP's ``</w>`` end-of-word marker; ties break by pair."""
    vocab = Counter(tuple(w[:-1]) + (w[-1] + "</w>",) for w in words)
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for symbols, count in vocab.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged: Counter = Counter()
        for symbols, count in vocab.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += count
        vocab = merged
    return merges


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A CLIP BPE tokenizer trained on :data:`CORPUS` (byte alphabet + a few hundred merges)."""
    alphabet = _byte_alphabet()
    merges = _learn_merges(CORPUS, N_MERGES)
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(
        vocab=vocab, merges=merges, model_max_length=MAX_LENGTH
    )


def tiny_text_encoder(tokenizer: CLIPTokenizer, hidden: int = 32) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        projection_dim=hidden,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config).eval()


def tiny_unet(in_channels: int = 4, **overrides) -> UNet2DConditionModel:
    """SD-1.x's UNet layout at tiny width (blocks 32/32/64/64, one layer per block)."""
    config = dict(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=4,
    )
    config.update(overrides)
    return UNet2DConditionModel(**config).eval()


def tiny_vae(levels: int = 4, scaling_factor: float = 0.18215) -> AutoencoderKL:
    """SD's KL autoencoder at tiny width; ``levels`` 4 downsamples 8x like SD."""
    widths = (16, 32, 32, 32)[:levels]
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=widths,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    ).eval()


def sd_scheduler_config() -> dict:
    """SD-1.x's noise schedule (scaled linear betas, 1000 steps)."""
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        set_alpha_to_one=False,
    )


def _text_parts() -> dict:
    tokenizer = tiny_clip_tokenizer()
    return {"tokenizer": tokenizer, "text_encoder": tiny_text_encoder(tokenizer)}


def _save(pipe, out: Path) -> None:
    pipe.save_pretrained(str(out), safe_serialization=True)
    # Pin the tokenizer's files: save_pretrained writes them, but a stable key order keeps
    # two builds byte-identical.
    for name in ("tokenizer/vocab.json", "tokenizer/tokenizer_config.json"):
        path = Path(out) / name
        if path.exists():
            path.write_text(json.dumps(json.loads(path.read_text()), indent=2, sort_keys=True))


def build_sd_img2img(out: Path) -> None:
    """SD-1.x img2img (4-channel UNet, PNDM like stable-diffusion-v1-5)."""
    pipe = StableDiffusionImg2ImgPipeline(
        vae=tiny_vae(),
        unet=tiny_unet(4),
        scheduler=PNDMScheduler(**sd_scheduler_config(), skip_prk_steps=True),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **_text_parts(),
    )
    _save(pipe, out)


def build_sd_inpaint(out: Path) -> None:
    """SD inpainting (9-channel UNet: latents + mask + masked-image latents, DDIM)."""
    pipe = StableDiffusionInpaintPipeline(
        vae=tiny_vae(),
        unet=tiny_unet(9),
        scheduler=DDIMScheduler(**sd_scheduler_config(), clip_sample=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **_text_parts(),
    )
    _save(pipe, out)


def build_sd_ip2p(out: Path) -> None:
    """InstructPix2Pix (8-channel UNet: latents + image latents, Euler ancestral)."""
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=tiny_vae(),
        unet=tiny_unet(8),
        scheduler=EulerAncestralDiscreteScheduler(
            num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
            beta_schedule="scaled_linear", steps_offset=1,
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **_text_parts(),
    )
    _save(pipe, out)


def build_sd_upscale(out: Path) -> None:
    """The x4 upscaler's layout: 3-level VAE (4x), 7-channel UNet with noise-level classes."""
    unet = tiny_unet(
        7,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
        num_class_embeds=1000,
        use_linear_projection=True,
    )
    pipe = StableDiffusionUpscalePipeline(
        vae=tiny_vae(levels=3, scaling_factor=0.08333),
        unet=unet,
        low_res_scheduler=DDPMScheduler(
            num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
            beta_schedule="scaled_linear",
        ),
        scheduler=DDIMScheduler(
            num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
            beta_schedule="scaled_linear", prediction_type="v_prediction", clip_sample=False,
            set_alpha_to_one=False, steps_offset=1,
        ),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        max_noise_level=350,
        **_text_parts(),
    )
    _save(pipe, out)


def _sd15_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """SD-1.5's text encoder (CLIP ViT-L/14's text tower), random weights."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=MAX_LENGTH, projection_dim=768,
            hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()


def sd15_components(task: str, seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """Full-size SD-1.5 components with random weights (in memory, nothing downloaded).

    ``task`` is ``img2img``, ``inpaint`` or ``ip2p`` (InstructPix2Pix: SD-1.5's architecture
    with an 8-channel UNet input); the result feeds the pipeline class's constructor. Compute
    does not depend on the weights, so this measures the real model's speed and memory. The
    modules are initialised on ``device`` (on a GPU: seconds instead of a minute on the CPU).
    """
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    in_channels = {"img2img": 4, "inpaint": 9, "ip2p": 8}[task]
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=in_channels, cross_attention_dim=768
        ).eval()
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            sample_size=512,
        ).eval()
        text_encoder = _sd15_text_encoder(tokenizer)
    if task == "inpaint":
        scheduler = DDIMScheduler(**sd_scheduler_config(), clip_sample=False)
    elif task == "ip2p":
        scheduler = EulerAncestralDiscreteScheduler(
            num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
            beta_schedule="scaled_linear", steps_offset=1,
        )
    else:
        scheduler = PNDMScheduler(**sd_scheduler_config(), skip_prk_steps=True)
    return dict(
        vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def upscaler_components(seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """The full-size x4 upscaler (stabilityai/stable-diffusion-x4-upscaler's configs), random
    weights: a 7-channel UNet (256/512/512/1024, noise-level class embeddings, cross-attention
    only in its attention blocks' ``attn1``), a 3-level VAE (4x) and OpenCLIP ViT-H's text
    tower (23 layers of width 1024). The tokenizer is the tiny one (timing only). Modules are
    initialised on ``device``.
    """
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    with torch.device(device):
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408, hidden_size=1024, intermediate_size=4096,
                num_hidden_layers=23, num_attention_heads=16,
                max_position_embeddings=MAX_LENGTH, projection_dim=512, hidden_act="gelu",
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        ).eval()
        unet = UNet2DConditionModel(
            sample_size=128, in_channels=7, out_channels=4,
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
            up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
            block_out_channels=(256, 512, 512, 1024), layers_per_block=2, attention_head_dim=8,
            cross_attention_dim=1024, num_class_embeds=1000,
            only_cross_attention=(True, True, True, False), use_linear_projection=True,
        ).eval()
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(128, 256, 512),
            layers_per_block=2,
            sample_size=256,
            scaling_factor=0.08333,
        ).eval()
    return dict(
        vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer,
        low_res_scheduler=DDPMScheduler(
            num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
            beta_schedule="scaled_linear",
        ),
        scheduler=DDIMScheduler(
            num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
            beta_schedule="scaled_linear", prediction_type="v_prediction", clip_sample=False,
            set_alpha_to_one=False, steps_offset=1,
        ),
        safety_checker=None, feature_extractor=None, watermarker=None, max_noise_level=350,
    )
