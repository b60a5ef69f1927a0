"""ldmdata: build, version and attack benchmark datasets for latent-diffusion image editing."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy exports: ``ldmdata.open_dataset`` imports dvc and datasets only when used."""
    if name == "open_dataset":
        from ldmdata.publish.versions import open_dataset

        return open_dataset
    raise AttributeError(f"module 'ldmdata' has no attribute {name!r}")
