"""Publishing defaults (free of datasets and huggingface_hub, for the CLI's help)."""

DEFAULT_LICENSE = "cc-by-4.0"
