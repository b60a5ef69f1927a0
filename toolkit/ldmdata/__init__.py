"""ldmdata: build, version and attack benchmark datasets for latent-diffusion image editing."""

__version__ = "0.1.0"
