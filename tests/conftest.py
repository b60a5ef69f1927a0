"""Shared test setup: offline Hub, a quiet DVC, and one tiny model set per session."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The whole tiny model set, built once per test session."""
    from ldmdata.models.tiny import build_tiny_models

    folder = tmp_path_factory.mktemp("tiny")
    build_tiny_models(folder)
    return folder
