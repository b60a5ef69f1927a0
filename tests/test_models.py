"""Model wrappers on the tiny vision/text set: shapes, types, determinism, loading errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ldmdata.errors import LdmdataError
from ldmdata.models.captioner import Captioner
from ldmdata.models.clip import ClipScorer
from ldmdata.models.detector import Detection, Detector
from ldmdata.models.loading import check_loadable, load_pretrained
from ldmdata.models.refs import ModelRef
from ldmdata.models.segmenter import SamSegmenter, load_segmenter
from ldmdata.models.tiny import build_tiny_models, ensure_tiny_models

VISION_ROLES = ["captioner", "detector", "segmenter", "clip", "llm"]
MAX_ROLE_BYTES = 5 * 1024 * 1024


def _official_or_skip():
    """segment-anything imports torchvision, which does not load next to every torch build."""
    try:
        import segment_anything  # noqa: F401
    except Exception as exc:
        pytest.skip(f"segment-anything cannot import here (torchvision?): {exc}")


@pytest.fixture(scope="session")
def vision_dir(tmp_path_factory) -> Path:
    return ensure_tiny_models(tmp_path_factory.mktemp("tiny_vision"), VISION_ROLES)


@pytest.fixture(scope="session")
def official_dir(vision_dir) -> Path:
    _official_or_skip()
    return ensure_tiny_models(vision_dir, ["segmenter_official"])


def ref(folder: Path, role: str) -> ModelRef:
    return ModelRef(role, str(folder / role))


@pytest.fixture(scope="session")
def photos() -> list[Image.Image]:
    """Real photographs (scikit-image's) at odd sizes, one grayscale."""
    skimage = pytest.importorskip("skimage")
    data = Path(skimage.__file__).parent / "data"
    astronaut = Image.open(data / "astronaut.png").convert("RGB")
    return [
        astronaut.resize((640, 480)),
        astronaut.resize((300, 500)),
        Image.open(data / "chelsea.png").convert("RGB"),  # 451 x 300
        Image.open(data / "coffee.png").convert("L"),  # 600 x 400, grayscale
    ]


@pytest.fixture(scope="session")
def captioner(vision_dir):
    return Captioner(ref(vision_dir, "captioner"), max_new_tokens=8)


@pytest.fixture(scope="session")
def detector(vision_dir):
    return Detector(ref(vision_dir, "detector"))


@pytest.fixture(scope="session")
def segmenter(vision_dir):
    return SamSegmenter(ref(vision_dir, "segmenter"))


@pytest.fixture(scope="session")
def clip(vision_dir):
    return ClipScorer(ref(vision_dir, "clip"))


# ---- the tiny set ----------------------------------------------------------------------------


def test_tiny_rebuild_is_byte_identical_and_small(vision_dir, tmp_path):
    again = build_tiny_models(tmp_path / "again", VISION_ROLES)
    first = json.loads((vision_dir / "tiny.json").read_text())["roles"]
    second = json.loads((again / "tiny.json").read_text())["roles"]
    assert {role: first[role] for role in VISION_ROLES} == second
    for role in VISION_ROLES:
        files = list((again / role).rglob("*"))
        assert any(f.name == "model.safetensors" for f in files)
        assert not any(f.suffix in {".bin", ".pt", ".pth", ".pkl"} for f in files)
        assert sum(f.stat().st_size for f in files if f.is_file()) < MAX_ROLE_BYTES


def test_tiny_tokenizers_cover_caption_text(vision_dir):
    from transformers import AutoTokenizer

    text = "A red car parked near a café on the street, 3 dogs!"
    for role in ("clip", "detector", "llm", "captioner"):
        tokenizer = AutoTokenizer.from_pretrained(str(vision_dir / role))
        ids = tokenizer(text)["input_ids"]
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        assert "red" in decoded and "street" in decoded
    clip_tokenizer = AutoTokenizer.from_pretrained(str(vision_dir / "clip"))
    assert clip_tokenizer.model_max_length == 77
    long = " ".join(["a small dog sitting on the grass"] * 20)
    assert len(clip_tokenizer(long, truncation=True)["input_ids"]) == 77


# ---- captioner -------------------------------------------------------------------------------


def test_captioner_batched_deterministic(captioner, photos):
    captions = captioner.caption(photos)
    assert len(captions) == len(photos)
    assert all(isinstance(c, str) and c == c.strip() and "  " not in c for c in captions)
    assert captioner.caption(photos) == captions
    assert captioner.caption([]) == []


# ---- detector --------------------------------------------------------------------------------


def test_detector_boxes_inside_images(detector, photos):
    long_query = "an astronaut in a white suit " * 6  # longer than OWL's 16 text positions
    queries = ["a person", "a cat", "a cup of coffee", long_query]
    found = detector.detect(photos, queries)
    assert len(found) == len(photos)
    assert any(d is not None for d in found)
    for image, det in zip(photos, found, strict=True):
        if det is None:
            continue
        x0, y0, x1, y1 = det.box
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        assert x1 - x0 >= 1 and y1 - y0 >= 1
        assert detector.threshold < det.score <= 1.0
    assert detector.detect(photos, queries) == found


def test_detector_threshold_and_bad_input(vision_dir, photos):
    strict = Detector(ref(vision_dir, "detector"), threshold=1.0)
    assert strict.detect(photos[:2], ["a", "b"]) == [None, None]
    with pytest.raises(ValueError, match="2 images but 1 queries"):
        strict.detect(photos[:2], ["a"])
    assert strict.detect([], []) == []


def test_detector_maps_padded_square_to_image():
    # A 300x500 image shown as 38x64 inside a 64x64 padded square: x scales by 300/38.
    scale = (300 / 38, 500 / 64, 300, 500)
    result = {
        "scores": torch.tensor([0.9, 0.8, 0.5]),
        "boxes": torch.tensor(
            [[50.0, 10.0, 60.0, 20.0], [10.0, -4.0, 50.0, 32.0], [1.0, 1.0, 2.0, 2.0]]
        ),
    }
    best = Detector._best(result, scale)
    # The top box lies in the padding (x > 38): clipped to nothing, so the next one wins.
    assert best == Detection((10 * 300 / 38, 0.0, 300.0, 250.0), pytest.approx(0.8))


# ---- segmenters ------------------------------------------------------------------------------


def test_sam_masks_match_image_sizes(segmenter, photos):
    boxes = [(100, 80, 400, 300), (20, 30, 280, 470), (0, 0, 451, 300), (300, 100, 310, 110)]
    masks = segmenter.segment(photos, boxes)
    assert len(masks) == len(photos)
    for image, mask in zip(photos, masks, strict=True):
        assert mask.dtype == np.bool_ and mask.shape == (image.height, image.width)
    again = segmenter.segment(photos, boxes)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again, strict=True))
    with pytest.raises(ValueError):
        segmenter.segment(photos, boxes[:1])
    assert segmenter.segment([], []) == []


def test_sam_cheap_upscale_equals_processor_post_processing(segmenter, photos):
    image, box = photos[0], (100.0, 80.0, 400.0, 300.0)  # 640 x 480 -> 64 x 48
    [mask] = segmenter.segment([image], [box])
    small = image.resize((64, 48), segmenter.resample, reducing_gap=2.0)
    inputs = segmenter.processor(
        images=[small], input_boxes=[[[10.0, 8.0, 40.0, 30.0]]], return_tensors="pt"
    )
    with torch.inference_mode():
        out = segmenter.model(**inputs, multimask_output=True)
    full = segmenter.processor.image_processor.post_process_masks(
        out.pred_masks, original_sizes=[(480, 640)], reshaped_input_sizes=[(48, 64)]
    )[0][0]
    best = int(out.iou_scores[0, 0].argmax())
    assert np.array_equal(mask, full[best].numpy())


def test_official_sam_backend_and_automatic_masks(official_dir, photos, tmp_path):
    segmenter = load_segmenter(ref(official_dir, "segmenter_official"), "segment-anything")
    masks = segmenter.segment(photos[:3], [(100, 80, 400, 300), (20, 30, 280, 470), (5, 5, 90, 60)])
    for image, mask in zip(photos[:3], masks, strict=True):
        assert mask.dtype == np.bool_ and mask.shape == (image.height, image.width)
    generator = segmenter.automatic_mask_generator(
        points_per_side=4, pred_iou_thresh=-1.0, stability_score_thresh=0.0
    )
    image = np.asarray(photos[2])
    found = generator.generate(image)
    assert found
    for record in found:
        assert record["segmentation"].dtype == np.bool_
        assert record["segmentation"].shape == image.shape[:2]


def test_official_sam_refuses_unknown_or_pickled_checkpoints(official_dir, tmp_path):
    _official_or_skip()
    from safetensors.torch import load_file

    state = load_file(str(official_dir / "segmenter_official" / "model.safetensors"))
    tiny_pth = tmp_path / "sam_tiny.pth"
    torch.save(state, tiny_pth)
    with pytest.raises(LdmdataError, match="unknown image-encoder width 32"):
        load_segmenter(ModelRef("segmenter_official", str(tiny_pth)), "segment-anything")
    pickled = tmp_path / "evil.pth"
    torch.save({"payload": Path("x")}, pickled)  # not plain tensors: weights_only must refuse
    with pytest.raises(LdmdataError, match="cannot load segmenter_official") as info:
        load_segmenter(ModelRef("segmenter_official", str(pickled)), "segment-anything")
    assert "\n" not in str(info.value)


def test_unknown_segmenter_backend(vision_dir):
    with pytest.raises(LdmdataError, match="unknown segmenter backend"):
        load_segmenter(ref(vision_dir, "segmenter"), "opencv")


# ---- CLIP ------------------------------------------------------------------------------------


def test_clip_scores_ragged_and_in_range(clip, photos):
    prompt = " ".join(["a small dog sitting on the green grass near a tall tree"] * 4)  # 44 words
    texts = [["a person", "a dog", prompt], [], ["a cat"], ["coffee"] * 15]
    scores = clip.image_text_scores(photos, texts)
    assert [len(s) for s in scores] == [3, 0, 1, 15]
    flat = [v for row in scores for v in row]
    assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in flat)
    assert len(set(flat)) > 1
    assert clip.image_text_scores(photos, texts) == scores
    alone = clip.image_text_scores(photos[:1], texts[:1])
    assert alone[0] == pytest.approx(scores[0], abs=1e-3)
    with pytest.raises(ValueError):
        clip.image_text_scores(photos, texts[:2])


def test_clip_score_is_100_times_clamped_cosine(clip):
    image = Image.new("RGB", (48, 32), (120, 40, 200))  # shortest side already 32: no resize
    texts = ["a purple square", "a red car on the street", "zebra"]
    inputs = clip.processor(text=texts, images=[image], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = clip.model(**inputs)
        cosine = out.logits_per_image[0] / clip.model.logit_scale.exp()
        expected = (100 * cosine).clamp(min=0).tolist()
    assert clip.image_text_scores([image], [texts])[0] == pytest.approx(expected, abs=1e-3)


# ---- prompt writers --------------------------------------------------------------------------


def test_llm_prompt_writer(vision_dir):
    from ldmdata.builders.prompts import make_prompt_writer

    writer = make_prompt_writer("llm", ref(vision_dir, "llm"))
    captions = ["A lone motorcycle parked in parking space at night.", "a dog", "x " * 300]
    prompts = writer.write(captions, 3, [1, 2, 3])
    assert [len(p) for p in prompts] == [3, 3, 3]
    assert all(
        p.startswith("A lone motorcycle parked in parking space at night") for p in prompts[0]
    )
    assert all(p.startswith("a dog") for p in prompts[1])
    assert all("\n" not in p and p == p.strip() for row in prompts for p in row)
    assert writer.write(captions, 3, [1, 2, 3]) == prompts
    assert writer.write(captions[1:2], 3, [2]) == prompts[1:2]  # a caption's seed alone decides
    assert writer.write(captions[1:2], 3, [99]) != prompts[1:2]
    with pytest.raises(ValueError):
        writer.write(captions, 3, [1])


def test_llm_prompt_writer_keeps_caption_when_continuation_is_empty(vision_dir, monkeypatch):
    from ldmdata.builders.prompts import LlmPromptWriter

    writer = LlmPromptWriter(ref(vision_dir, "llm"), max_new_tokens=2)
    monkeypatch.setattr(writer.tokenizer, "batch_decode", lambda ids, **_: ["\n\x07"] * len(ids))
    assert writer.write(["A cat on a mat."], 2, [0]) == [["A cat on a mat.", "A cat on a mat."]]


def test_template_prompt_writer_delegates():
    from ldmdata.builders.prompts import make_prompt_writer
    from ldmdata.builders.text import template_prompts

    writer = make_prompt_writer("template", None)
    captions = ["a red car parked on the street", "two dogs in a park"]
    prompts = writer.write(captions, 4, [5, 6])
    expected = [
        template_prompts(c, 4, np.random.default_rng(s))
        for c, s in zip(captions, [5, 6], strict=True)
    ]
    assert prompts == expected
    assert writer.write(captions, 4, [5, 6]) == prompts


def test_make_prompt_writer_errors():
    from ldmdata.builders.prompts import make_prompt_writer

    with pytest.raises(LdmdataError, match="needs a model"):
        make_prompt_writer("llm", None)
    with pytest.raises(LdmdataError, match="unknown prompt writer"):
        make_prompt_writer("poet", None)


# ---- loading errors --------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_local_folder_is_one_line(tmp_path):
    missing = ModelRef("captioner", str(tmp_path / "nowhere"))
    with pytest.raises(LdmdataError) as info:
        check_loadable(missing)
    assert "cannot load captioner model" in _one_line(info) and "no such file" in str(info.value)
    with pytest.raises(LdmdataError) as info:
        Captioner(missing)
    assert "no such file or folder" in _one_line(info)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LdmdataError, match="has no config.json"):
        ClipScorer(ModelRef("clip", str(tmp_path / "empty")))


def test_hub_id_offline_is_one_line():
    hub = ModelRef(
        "clip", "ldmdata-tests/no-such-model", "0123456789abcdef0123456789abcdef01234567"
    )
    with pytest.raises(LdmdataError) as info:
        check_loadable(hub)
    text = _one_line(info)
    assert "'ldmdata-tests/no-such-model'" in text and "HF_HUB_OFFLINE=1" in text
    assert "revision 0123456789abcdef" in text
    with pytest.raises(LdmdataError) as info:
        ClipScorer(hub)
    assert "HF_HUB_OFFLINE=1" in _one_line(info)


def test_hub_id_in_local_cache_passes_check(tmp_path, monkeypatch):
    from huggingface_hub import constants

    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--org--cached" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    check_loadable(ModelRef("clip", "org/cached", revision))
    with pytest.raises(LdmdataError, match="not in the local Hugging Face cache"):
        check_loadable(ModelRef("clip", "org/cached", "f" * 40))


def test_corrupt_weights_are_one_line(vision_dir, tmp_path):
    from transformers import CLIPModel

    broken = tmp_path / "clip"
    shutil.copytree(vision_dir / "clip", broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(LdmdataError) as info:
        load_pretrained(CLIPModel, ModelRef("clip", str(broken)))
    assert _one_line(info).startswith(f"cannot load clip model '{broken}' (revision main): ")


def test_params_yaml_names_the_same_real_models_as_the_library():
    """One set of real ids: params.yaml's models section and the library's fallback agree."""
    from pathlib import Path

    import yaml

    from ldmdata.models.refs import REAL_MODELS

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    models = {k: v for k, v in params["models"].items() if k != "profile"}
    assert models == REAL_MODELS
