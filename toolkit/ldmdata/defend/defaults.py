"""Every defence's parameters and their defaults (free of torch, for the CLI's help)."""

DEFAULTS: dict[str, dict] = {
    "jpeg": {"quality": 75},
    "blur": {"sigma": 1.0},
    "noise": {"std": 0.05, "seed": 0},
    "resize": {"factor": 2.0, "resample": "bicubic"},
    "noisy_upscale": {
        "std": 0.05, "downscale": 4, "prompt": "", "num_inference_steps": 20,
        "guidance_scale": 7.5, "noise_level": 20, "seed": 0,
    },
}
METHODS = tuple(DEFAULTS)
