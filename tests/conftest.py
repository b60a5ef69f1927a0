"""Shared test setup: offline Hub, a quiet DVC, one torch thread, and per-session fixtures: the
tiny model set and a small "world" (a dataset, an adversarial set, the clean and adversarial
edits) that the edit, defend and metrics tests share."""

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


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models on a busy 2-core machine: one torch thread avoids OpenMP spin contention."""
    from helpers.eval_data import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="session")
def world(tmp_path_factory, tiny_dir):
    """3 img2img samples x 2 prompts: dataset, adversarial set, clean and adversarial edits."""
    from helpers.eval_data import make_world

    return make_world(tmp_path_factory.mktemp("world"), tiny_dir)


@pytest.fixture(scope="session")
def pipes(tiny_dir):
    """The tiny SD img2img and inpainting pipelines, loaded once."""
    from ldmdata.models.editors import load_pipeline
    from ldmdata.models.refs import ModelRef

    return {
        task: load_pipeline(ModelRef(f"sd_{task}", str(tiny_dir / f"sd_{task}")), task)
        for task in ("img2img", "inpaint")
    }
