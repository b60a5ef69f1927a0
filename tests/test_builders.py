"""The three builders end to end on the tiny models: content, determinism, sources, rejects."""

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from helpers.corpus import write_bad_corpus
from ldmdata.builders import build_dataset
from ldmdata.dataset import iter_rows, verify
from ldmdata.errors import LdmdataError

SMALL = {"size": 64, "shard_size": 4, "batch_size": 4}
SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")


def build(task, out, tiny_dir, source="synthetic", **settings):
    return build_dataset(task, out, {**SMALL, **settings}, source=source, tiny_dir=tiny_dir)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of real photographs shipped with scikit-image, one with a sidecar caption."""
    import skimage

    folder = tmp_path_factory.mktemp("photos")
    data = Path(skimage.__file__).parent / "data"
    for name in SKIMAGE_PHOTOS:
        shutil.copy(data / name, folder / name)
    (folder / "coffee.txt").write_text("a cup of coffee on a saucer\na coffee cup on a table\n")
    return folder


def test_inpaint_rows_masks_and_prompts(tmp_path, tiny_dir):
    out = tmp_path / "inpaint"
    manifest = build("inpaint", out, tiny_dir, n=6, mask_min=0.0, mask_max=1.0)
    assert manifest["n"] == 6 and manifest["task"] == "inpaint" and verify(out) == []
    assert {m["role"] for m in manifest["models"]} == {"clip", "captioner", "detector", "segmenter"}
    assert all(m["revision"].startswith("sha256:") for m in manifest["models"])
    rows = list(iter_rows(out))
    assert [r["id"] for r in rows] == [f"inpaint-{i:06d}" for i in range(6)]
    for row in rows:
        assert row["image"].size == (64, 64) and row["image"].mode == "RGB"
        mask = np.asarray(row["mask"])
        assert row["mask"].mode == "L" and set(np.unique(mask)) <= {0, 255}
        assert row["mask_fraction"] == pytest.approx((mask > 0).mean(), abs=1e-6)
        assert len(row["prompts"]) == 5 and len(set(row["prompts"])) == 5
        scores = row["prompt_clip_scores"]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 100 for s in scores)
        # synthetic scenes carry labels and exact masks: the entity is a label, IoU is measured
        assert row["entity"] and row["gt_iou"] is not None and 0 <= row["gt_iou"] <= 1
        x0, y0, x1, y1 = row["box"]
        assert 0 <= x0 <= x1 <= 64 and 0 <= y0 <= y1 <= 64


def test_mask_coverage_filter_rejects_with_reason(tmp_path, tiny_dir):
    build("inpaint", tmp_path / "ds", tiny_dir, n=4, mask_min=0.25, mask_max=0.5)
    rejects = [json.loads(x) for x in (tmp_path / "ds/rejects.jsonl").read_text().splitlines()]
    assert rejects, "the tiny SAM's masks should miss a 25-50% coverage window sometimes"
    assert all(r["reason"].startswith(("mask covers", "no detection")) for r in rejects)
    for row in iter_rows(tmp_path / "ds", columns=["mask_fraction"]):
        assert 0.25 <= row["mask_fraction"] <= 0.5


def test_a_source_that_only_gives_rejects_stops_with_reasons(tmp_path, tiny_dir, photos):
    with pytest.raises(LdmdataError, match="no usable inputs.*mask covers"):
        build("inpaint", tmp_path / "a", tiny_dir, source=f"folder:{photos}", n=3,
              mask_min=0.0, mask_max=1e-6)
    assert not (tmp_path / "a").exists()
    with pytest.raises(LdmdataError, match="5 inputs rejected"):
        build("inpaint", tmp_path / "b", tiny_dir, n=3, mask_min=0.0, mask_max=1e-6,
              max_rejects=5)


def test_same_seed_same_hash_other_seed_differs(tmp_path, tiny_dir):
    a = build("img2img", tmp_path / "a", tiny_dir, n=5)
    b = build("img2img", tmp_path / "b", tiny_dir, n=5)
    c = build("img2img", tmp_path / "c", tiny_dir, n=5, seed=1)
    assert a["content_hash"] == b["content_hash"] != c["content_hash"]


def test_interrupted_build_resumes_to_the_same_hash(tmp_path, tiny_dir):
    """Stopped mid-shard (after shard 0 committed), the rerun equals an uninterrupted build."""
    settings = {**SMALL, "batch_size": 3, "n": 10, "mask_min": 0.0, "mask_max": 1.0}
    ref = build_dataset("inpaint", tmp_path / "ref", settings, tiny_dir=tiny_dir)

    def stop(written, rejected):
        if written >= 5:  # shard 0 (4 rows) committed, shard 1 under way
            raise KeyboardInterrupt

    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        build_dataset("inpaint", out, settings, tiny_dir=tiny_dir, on_progress=stop)
    assert (out / ".partial" / "shard-00000.json").exists() and not (out / "manifest.json").exists()
    resumed = build_dataset("inpaint", out, settings, tiny_dir=tiny_dir)
    assert resumed["content_hash"] == ref["content_hash"]
    assert (out / "rejects.jsonl").read_text() == (tmp_path / "ref" / "rejects.jsonl").read_text()


def test_caption_sources_model_and_source(tmp_path, tiny_dir):
    from_source = build("img2img", tmp_path / "s", tiny_dir, n=3, caption_from="source")
    from_model = build("img2img", tmp_path / "m", tiny_dir, n=3, caption_from="model")
    source_caps = [r["caption"] for r in iter_rows(tmp_path / "s", columns=["caption"])]
    model_caps = [r["caption"] for r in iter_rows(tmp_path / "m", columns=["caption"])]
    assert all(any(w in c for w in ("circle", "square", "triangle", "star", "ring", "background",
                                    "hexagon", "ellipse", "cross", "diamond")) for c in source_caps)
    assert source_caps != model_caps
    assert "captioner" in {m["role"] for m in from_model["models"]}
    assert "captioner" not in {m["role"] for m in from_source["models"]}


def test_entity_from_caption_and_source(tmp_path, tiny_dir):
    build("inpaint", tmp_path / "c", tiny_dir, n=3, entity_from="caption", mask_min=0.0,
          mask_max=1.0)
    build("inpaint", tmp_path / "s", tiny_dir, n=3, entity_from="source", mask_min=0.0,
          mask_max=1.0)
    for folder in ("c", "s"):
        for row in iter_rows(tmp_path / folder, columns=["entity", "caption"]):
            assert row["entity"]


@pytest.mark.parametrize("degradation", ["bicubic", "realesrgan"])
def test_sr_pairs(tmp_path, tiny_dir, degradation):
    manifest = build("sr", tmp_path / "sr", tiny_dir, n=3, degradation=degradation, scale=4)
    assert manifest["n"] == 3
    for row in iter_rows(tmp_path / "sr"):
        assert row["hr"].size == (64, 64) and row["lr"].size == (16, 16)
        params = json.loads(row["degradation"])
        assert params["kind"] == degradation and row["scale"] == 4
    if degradation == "realesrgan":
        drawn = [r["degradation"] for r in iter_rows(tmp_path / "sr", columns=["degradation"])]
        assert len(set(drawn)) == 3  # parameters drawn per sample


def test_real_photos_folder_with_sidecar_and_exhaustion(tmp_path, tiny_dir, photos):
    manifest = build("img2img", tmp_path / "p", tiny_dir, source=f"folder:{photos}", n=50)
    assert manifest["n"] == len(SKIMAGE_PHOTOS) and manifest["exhausted"] is True
    rows = {r["source_id"]: r for r in iter_rows(tmp_path / "p", columns=["source_id", "captions"])}
    assert set(rows["coffee.png"]["captions"]) == {"a cup of coffee on a saucer",
                                                  "a coffee cup on a table"}


def test_bad_input_corpus_never_stops_a_build(tmp_path, tiny_dir):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    expected = write_bad_corpus(corpus)
    manifest = build("img2img", tmp_path / "out", tiny_dir, source=f"folder:{corpus}", n=100)
    rejects = {json.loads(x)["source_id"]: json.loads(x)["reason"]
               for x in (tmp_path / "out/rejects.jsonl").read_text().splitlines()}
    accepted = {r["source_id"] for r in iter_rows(tmp_path / "out", columns=["source_id"])}
    for name, reason in expected.items():
        if reason is None:
            assert name in accepted, name
        else:
            assert rejects[name].startswith(reason), (name, rejects.get(name))
    assert manifest["n"] == len(accepted)
    assert manifest["rejects"]["count"] == len(rejects)


def test_official_segment_anything_backend(tmp_path, tiny_dir):
    manifest = build("inpaint", tmp_path / "o", tiny_dir, n=2, mask_min=0.0, mask_max=1.0,
                     segmenter_backend="segment-anything")
    assert "segmenter_official" in {m["role"] for m in manifest["models"]}
    assert manifest["n"] == 2


def test_llm_prompt_writer(tmp_path, tiny_dir):
    manifest = build("img2img", tmp_path / "l", tiny_dir, n=2, prompt_writer="llm",
                     num_candidates=6, num_prompts=3)
    assert "llm" in {m["role"] for m in manifest["models"]}
    for row in iter_rows(tmp_path / "l", columns=["prompts"]):
        assert len(row["prompts"]) == 3


def test_hf_source_from_a_local_dataset(tmp_path, tiny_dir):
    images = [Image.new("RGB", (80, 70), (i * 40, 100, 50)) for i in range(3)]
    local = datasets.Dataset.from_dict(
        {"image": images, "caption": [f"a plain picture number {i}" for i in range(3)]},
        features=datasets.Features(
            {"image": datasets.Image(), "caption": datasets.Value("string")}
        ),
    )
    local.to_parquet(str(tmp_path / "hfdata" / "train.parquet"))
    manifest = build("img2img", tmp_path / "h", tiny_dir, source=f"hf:{tmp_path / 'hfdata'}", n=3)
    assert manifest["n"] == 3
    caps = [r["caption"] for r in iter_rows(tmp_path / "h", columns=["caption"])]
    assert caps == [f"a plain picture number {i}" for i in range(3)]


@pytest.mark.parametrize(
    ("settings", "source", "message"),
    [
        ({"n": 0}, "synthetic", "n must be a positive integer"),
        ({"n": 2}, "ftp:x", "unknown source"),
        ({"n": 2}, "folder:/no/such/folder", "/no/such/folder"),
        ({"n": 2, "caption_from": "magic"}, "synthetic", "caption_from must be one of"),
        ({"n": 2, "colour": 1}, "synthetic", "unknown key"),
    ],
)
def test_bad_settings_fail_before_writing(tmp_path, tiny_dir, settings, source, message):
    with pytest.raises(LdmdataError, match=message):
        build("img2img", tmp_path / "never", tiny_dir, source=source, **settings)
    assert not (tmp_path / "never").exists()


def test_real_profile_offline_fails_before_writing(tmp_path):
    with pytest.raises(LdmdataError, match="cannot load"):
        build_dataset("img2img", tmp_path / "never", {"n": 2}, profile="real")
    assert not (tmp_path / "never").exists()


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """A three-image COCO val folder: captions, categories and polygon instances."""
    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    (root / "val2017").mkdir()
    images, annotations, captions = [], [], []
    for k, image_id in enumerate((3, 1, 2)):
        name = f"{image_id:012d}.jpg"
        picture = Image.new("RGB", (160, 120), (200, 200, 40 * k))
        picture.paste((20, 40, 200), (40, 30, 120, 100))  # the "bus"
        picture.save(root / "val2017" / name)
        images.append({"id": image_id, "file_name": name, "width": 160, "height": 120})
        annotations.append({"id": 10 + k, "image_id": image_id, "category_id": 6, "iscrowd": 0,
                            "area": 5600.0, "segmentation": [[40, 30, 120, 30, 120, 100, 40, 100]]})
        captions += [{"id": 100 + 2 * k, "image_id": image_id, "caption": "A blue bus parked."},
                     {"id": 101 + 2 * k, "image_id": image_id, "caption": "A bus on a road."}]
    categories = [{"id": 6, "name": "bus"}]
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    (root / "annotations" / "captions_val2017.json").write_text(
        json.dumps({"images": images, "annotations": captions}))
    return root / "annotations" / "captions_val2017.json"


@pytest.mark.parametrize("caption_from", ["source", "model"])
def test_coco_inpaint_with_source_or_model_captions(tmp_path, tiny_dir, coco, caption_from):
    manifest = build("inpaint", tmp_path / "c", tiny_dir, source=f"coco:{coco}", n=5,
                     caption_from=caption_from, entity_from="source", mask_min=0.0, mask_max=1.0)
    assert manifest["n"] == 3 and manifest["exhausted"] is True
    rows = list(iter_rows(tmp_path / "c", columns=["source_id", "caption", "captions", "entity",
                                                   "gt_iou"]))
    assert [r["source_id"] for r in rows] == ["coco:1", "coco:2", "coco:3"]
    for row in rows:
        assert row["entity"] == "bus" and row["gt_iou"] is not None
        human = {"A blue bus parked.", "A bus on a road."}
        if caption_from == "source":
            assert set(row["captions"]) == human and row["caption"] in human
        else:
            assert row["captions"] == [row["caption"]] and row["caption"] not in human


def test_realesrgan_ranges_come_from_params(tmp_path, tiny_dir):
    build("sr", tmp_path / "sr", tiny_dir, n=2, degradation="realesrgan",
          realesrgan={"jpeg_range2": [90, 95]})
    for row in iter_rows(tmp_path / "sr", columns=["degradation"]):
        assert 90 <= json.loads(row["degradation"])["final"]["jpeg_quality"] <= 95
    with pytest.raises(LdmdataError, match="unknown realesrgan params: jpeg"):
        build("sr", tmp_path / "bad", tiny_dir, n=2, degradation="realesrgan",
              realesrgan={"jpeg": 5})
    assert not (tmp_path / "bad").exists()


def test_wordless_source_captions_fall_back_to_the_model(tmp_path, tiny_dir, photos):
    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(photos / "astronaut.png", folder / "astronaut.png")
    (folder / "astronaut.txt").write_text("...\n!!!\n")
    build("img2img", tmp_path / "auto", tiny_dir, source=f"folder:{folder}", n=1)
    row = next(iter_rows(tmp_path / "auto", columns=["caption"]))
    assert row["caption"] not in ("...", "!!!")
    with pytest.raises(LdmdataError, match="no source caption"):
        build("img2img", tmp_path / "src", tiny_dir, source=f"folder:{folder}", n=1,
              caption_from="source")


def test_the_commit_a_hub_revision_resolves_to_comes_from_the_cache(tmp_path):
    from ldmdata.models.loading import resolved_commit
    from ldmdata.models.refs import ModelRef

    repo = tmp_path / "models--org--name"
    (repo / "snapshots" / ("c" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("c" * 40) / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    ref = ModelRef("clip", "org/name", "main")
    assert resolved_commit(ref, cache_dir=str(tmp_path)) == "c" * 40
    assert resolved_commit(ModelRef("clip", "org/other", "main"), cache_dir=str(tmp_path)) is None
    assert resolved_commit(ModelRef("clip", str(tmp_path), None)) is None  # a local folder
