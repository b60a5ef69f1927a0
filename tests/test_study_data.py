"""The study's data: its released dataset folder as a source, COCO's study selection and masks,
and the prompts_from / mask_from / resize settings.

References are the study's own recipe written out here with PIL (``Image.resize((S, S))`` with
its default filter, masks binarised at 128 after resizing) and crops worked out by hand from
its notebook's formula.
"""

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from ldmdata.builders import build_dataset
from ldmdata.builders.selection import select_study
from ldmdata.cli.app import app
from ldmdata.dataset import iter_rows
from ldmdata.errors import LdmdataError
from ldmdata.sources import CocoSource, SyntheticSource, open_source

S = 64  # output side of the test builds
FAST = {"size": S, "shard_size": 2, "batch_size": 2}
# prompts.json's key order (the study's order) is deliberately not sorted
NAMES = ["000000000030.jpg", "000000000010.jpg", "000000000050.jpg", "000000000020.jpg",
         "000000000040.jpg", "000000000060.jpg"]
SELECT = [4, 0, 3]  # img2img rows: NAMES[4], NAMES[0], NAMES[3]
CROPPED = [1, 2, 5]  # files in images_crop/ and mask_crop/: rows in key order
EXTRA = "000000000070.jpg"  # in images/ but not selected


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def _photo(rng, size) -> Image.Image:
    pixels = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)


def _prompts(name: str) -> list[str]:
    return [f"a photo {name[-6:-4]} edited in way {j}\n" for j in range(5)]


@pytest.fixture
def study(tmp_path) -> Path:
    """The released folder in miniature: JPEG photos, crops and masks, prompts with trailing
    newlines and keys that have no image, a select_ids.txt of two identical lines."""
    rng = np.random.default_rng(0)
    root = tmp_path / "dataset"
    for sub in ("images", "images_crop", "mask_crop"):
        (root / sub).mkdir(parents=True)
    for k in [*SELECT, 1]:
        (root / "images" / NAMES[k]).write_bytes(_jpeg(_photo(rng, (96 + 8 * k, 72))))
    (root / "images" / EXTRA).write_bytes(_jpeg(_photo(rng, (80, 80))))
    for k in CROPPED:
        size = (90 + 10 * k, 70 + 4 * k)  # not square
        (root / "images_crop" / NAMES[k]).write_bytes(_jpeg(_photo(rng, size)))
        mask = Image.new("L", size, 0)
        ImageDraw.Draw(mask).ellipse((10, 12, size[0] - 20, size[1] - 8), fill=255)
        (root / "mask_crop" / NAMES[k]).write_bytes(_jpeg(mask.convert("RGB")))
    prompts = {name: _prompts(name) for name in NAMES}
    (root / "prompts.json").write_text(json.dumps(prompts))
    line = json.dumps(SELECT).replace(" ", "")
    (root / "select_ids.txt").write_text(f"{line}\n{line}")
    return root


def _roles(manifest) -> set[str]:
    return {m["role"] for m in manifest["models"]}


def test_img2img_rows_are_the_studys_pairs(study, tmp_path, tiny_dir):
    out = tmp_path / "i2i"
    manifest = build_dataset("img2img", out, FAST, source=f"ldm-robustness:{study}",
                             tiny_dir=tiny_dir)  # n not given: the whole set
    assert manifest["n"] == 3 and _roles(manifest) == {"clip"}  # no captioner, no writer
    assert manifest["exhausted"] is False
    assert manifest["params"]["prompts_from"] == "source"
    assert manifest["params"]["resize"] == "squash"
    rows = list(iter_rows(out))
    assert [r["source_id"] for r in rows] == [NAMES[k] for k in SELECT]
    for row in rows:
        assert row["prompts"] == [p.strip() for p in _prompts(row["source_id"])]
        assert len(row["prompt_clip_scores"]) == 5
        assert all(0 <= s <= 100 for s in row["prompt_clip_scores"])
        assert row["caption"] == "" and row["captions"] == []
        study_way = Image.open(study / "images" / row["source_id"]).convert("RGB").resize((S, S))
        assert np.array_equal(np.asarray(row["image"]), np.asarray(study_way))


def test_inpaint_rows_are_the_studys_triplets(study, tmp_path, tiny_dir):
    out = tmp_path / "inp"
    manifest = build_dataset("inpaint", out, {**FAST, "n": 3}, source=f"ldm-robustness:{study}",
                             tiny_dir=tiny_dir)
    assert manifest["n"] == 3 and _roles(manifest) == {"clip"}  # no detector, SAM, captioner
    assert manifest["params"]["mask_from"] == "source"
    assert manifest["rejects"]["count"] == 0
    rows = list(iter_rows(out))
    assert [r["source_id"] for r in rows] == [NAMES[k] for k in CROPPED]
    for row in rows:
        name = row["source_id"]
        assert row["prompts"] == [p.strip() for p in _prompts(name)]
        crop = Image.open(study / "images_crop" / name)
        study_image = crop.convert("RGB").resize((S, S))
        assert np.array_equal(np.asarray(row["image"]), np.asarray(study_image))
        study_mask = Image.open(study / "mask_crop" / name).convert("L").resize((S, S))
        expected = np.where(np.asarray(study_mask) >= 128, 255, 0)
        mask = np.asarray(row["mask"])
        assert row["mask"].mode == "L" and set(np.unique(mask)) == {0, 255}
        assert np.array_equal(mask, expected)
        assert mask[S // 2, S // 2] == 255 and mask[0, 0] == 0  # 255 on the entity
        assert row["crop_box"] == [0, 0, crop.width, crop.height]
        assert row["mask_fraction"] == pytest.approx((mask > 0).mean(), abs=1e-6)
    # stored as PNG, like every mask
    shard = out / manifest["shards"][0]["file"]
    stored = pq.read_table(shard, columns=["mask"]).column("mask")[0].as_py()["bytes"]
    assert stored[:8] == b"\x89PNG\r\n\x1a\n"


def test_source_rows_follow_the_attack_lists(study):
    img2img = open_source(f"ldm-robustness:{study}", task="img2img")
    inpaint = open_source(f"ldm-robustness:{study}", task="inpaint")
    assert img2img.curated and img2img.size() == 3 and inpaint.size() == 3
    items = list(inpaint.iterate(1))
    assert [i.index for i in items] == [1, 2] and items[0].source_id == NAMES[2]
    assert items[0].mask_data is not None and items[0].prompts[0].endswith("way 0")
    assert inpaint.describe()["count"] == 3 and inpaint.describe()["kind"] == "ldm-robustness"


def test_more_rows_than_the_folder_holds_says_exhausted(study, tmp_path, tiny_dir):
    result = CliRunner().invoke(app, [
        "build", "inpaint", "--source", f"ldm-robustness:{study}", "--n", "10",
        "--out", str(tmp_path / "ds"), "--tiny-dir", str(tiny_dir), "--batch-size", "2",
    ])
    assert result.exit_code == 0, result.output
    assert "source ran out: built 3 of 10 requested rows" in result.output
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["exhausted"] is True and manifest["n"] == 3


def _break(study: Path, how: str) -> None:
    if how == "no prompts":
        (study / "prompts.json").unlink()
    elif how == "prompts list":
        (study / "prompts.json").write_text("[1, 2]")
    elif how == "no select":
        (study / "select_ids.txt").unlink()
    elif how == "select range":
        (study / "select_ids.txt").write_text("[0, 99]")
    elif how == "select disagree":
        (study / "select_ids.txt").write_text("[0, 1]\n[0, 2]")
    elif how == "missing image":
        (study / "images" / NAMES[0]).unlink()
    elif how == "no masks":
        for file in (study / "mask_crop").iterdir():
            file.unlink()
        (study / "mask_crop").rmdir()
    elif how == "missing mask":
        (study / "mask_crop" / NAMES[2]).unlink()


@pytest.mark.parametrize("task, how, message", [
    ("img2img", "no prompts", "lacks prompts.json"),
    ("inpaint", "prompts list", "must hold an object"),
    ("img2img", "no select", "lacks select_ids.txt"),
    ("img2img", "select range", "index 0..5"),
    ("img2img", "select disagree", "repeated lines must agree"),
    ("img2img", "missing image", "1 of 3 images are missing"),
    ("inpaint", "no masks", "lacks mask_crop/"),
    ("inpaint", "missing mask", "1 of 3 images are missing"),
    ("sr", None, "serves the img2img and inpaint tasks"),
])
def test_bad_layouts_are_one_clear_line(study, tmp_path, task, how, message):
    _break(study, how)
    with pytest.raises(LdmdataError, match=message) as caught:
        build_dataset(task, tmp_path / "never", {"n": 2}, source=f"ldm-robustness:{study}")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "never").exists()


def test_model_prompts_on_the_study_folder_bring_the_captioner(study, tmp_path, tiny_dir):
    manifest = build_dataset("img2img", tmp_path / "m", {**FAST, "n": 1, "prompts_from": "model"},
                             source=f"ldm-robustness:{study}", tiny_dir=tiny_dir)
    assert _roles(manifest) == {"clip", "captioner"}
    row = next(iter_rows(tmp_path / "m"))
    assert row["caption"] and row["prompts"] != [p.strip() for p in _prompts(row["source_id"])]


def test_default_builds_keep_model_masks_and_centre_crops(tmp_path, tiny_dir):
    manifest = build_dataset("inpaint", tmp_path / "d", {**FAST, "n": 1, "mask_min": 0.0},
                             tiny_dir=tiny_dir)
    assert _roles(manifest) == {"clip", "captioner", "detector", "segmenter"}
    params = manifest["params"]
    assert (params["mask_from"], params["prompts_from"], params["resize"]) == (
        "model", "model", "center_crop")


def test_source_prompts_forced_on_a_source_without_them(tmp_path, tiny_dir):
    with pytest.raises(LdmdataError, match="3 inputs rejected.*no source prompts x3"):
        build_dataset("img2img", tmp_path / "x", {**FAST, "n": 1, "prompts_from": "source",
                                                  "max_rejects": 3}, tiny_dir=tiny_dir)


@pytest.mark.parametrize("key, value", [("prompts_from", "sam"), ("mask_from", "both"),
                                        ("resize", "pad"), ("selection", "random"),
                                        ("selection_k", 0)])
def test_bad_new_settings(tmp_path, key, value):
    with pytest.raises(LdmdataError, match=key):
        build_dataset("inpaint", tmp_path / "never", {key: value})


def test_synthetic_exact_masks_as_source_masks(tmp_path, tiny_dir):
    out = tmp_path / "syn"
    manifest = build_dataset("inpaint", out, {**FAST, "n": 3, "mask_from": "source",
                                              "caption_from": "source"}, tiny_dir=tiny_dir)
    assert _roles(manifest) == {"clip"}  # no SAM, no detector, no captioner
    source = SyntheticSource(0)
    for row in iter_rows(out):
        index = int(row["source_id"].rsplit(":", 1)[1])
        item = source.item(index)
        assert row["entity"] in item.labels
        left, top, right, bottom = row["crop_box"]
        assert right - left == bottom - top  # center_crop: a square
        exact = Image.fromarray(item.masks[row["entity"]].astype(np.uint8) * 255)
        expected = exact.crop(row["crop_box"]).resize((S, S), Image.Resampling.NEAREST)
        assert np.array_equal(np.asarray(row["mask"]), np.asarray(expected))


def test_img2img_squash_on_any_source(tmp_path, tiny_dir):
    build_dataset("img2img", tmp_path / "q", {**FAST, "n": 1, "resize": "squash"},
                  tiny_dir=tiny_dir)
    row = next(iter_rows(tmp_path / "q"))
    expected = SyntheticSource(0).item(0).image.convert("RGB").resize((S, S))
    assert np.array_equal(np.asarray(row["image"]), np.asarray(expected))


# ---------------------------------------------------------------------------------------------
# COCO: the study's selection and masks

W, H = 240, 160
BUS1 = (10, 20, 60, 40)  # x, y, w, h: the largest instance
BUS2 = (100, 30, 40, 50)


def _rect(x, y, w, h) -> list[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    """Four images, each with two buses and a tiny person (dropped by the 5 % box rule);
    captions scored by a stub CLIP through the number they end with."""
    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    (root / "val2017").mkdir()
    captions = {  # image id -> captions; image 2 talks about several buses
        1: ["A bus parked 40", "A bus on a road 10", "A red bus 10", "A bus 10"],
        2: ["Two buses parked 50", "Two buses in a street 50", "Buses 5"],
        3: ["A bus 30", "A bus 30", "A bus 30", "A bus 90"],
        4: ["A bus at a stop 70"],
    }
    images, annotations, texts = [], [], []
    for image_id, caps in captions.items():
        name = f"{image_id:012d}.jpg"
        picture = Image.new("RGB", (W, H), (200, 190, 40 * image_id))
        draw = ImageDraw.Draw(picture)
        for box, color in ((BUS1, (20, 40, 200)), (BUS2, (200, 40, 20))):
            draw.polygon(_rect(*box), fill=color)
        picture.save(root / "val2017" / name)
        images.append({"id": image_id, "file_name": name, "width": W, "height": H})
        for k, (box, cat) in enumerate(((BUS1, 6), (BUS2, 6), ((200, 140, 5, 5), 1))):
            annotations.append({"id": 10 * image_id + k, "image_id": image_id, "category_id": cat,
                                "iscrowd": 0, "area": float(box[2] * box[3]), "bbox": list(box),
                                "segmentation": [_rect(*box)]})
        texts += [{"id": 100 * image_id + k, "image_id": image_id, "caption": c}
                  for k, c in enumerate(caps)]
    categories = [{"id": 6, "name": "bus"}, {"id": 1, "name": "person"}]
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    (root / "annotations" / "captions_val2017.json").write_text(
        json.dumps({"images": images, "annotations": texts}))
    return root / "annotations" / "captions_val2017.json"


class _StubClip:
    """CLIP scores read from the number each caption ends with."""

    @staticmethod
    def image_text_scores(images, texts):
        assert len(images) == len(texts)
        return [[float(t.split()[-1]) for t in group] for group in texts]


class _StubModels:
    clip = _StubClip()


def test_study_selection_ranks_by_the_mean_of_the_top_3_captions(coco):
    settings = {"num_captions": 3, "batch_size": 3, "max_pixels": 10**8, "min_side": 8}
    # means of the best three: image 1 (40+10+10)/3=20, 2 (50+50+5)/3=35, 3 (90+30+30)/3=50,
    # 4 70 (its only caption)
    selected = select_study(CocoSource(coco), 3, settings, _StubModels())
    assert [item.source_id for item in selected.iterate()] == ["coco:4", "coco:3", "coco:2"]
    assert [item.index for item in selected.iterate(1)] == [1, 2]
    assert selected.size() == 3 and "study" in selected.describe()["selection"]


def test_coco_study_build_selection_masks_and_crops(coco, tmp_path, tiny_dir):
    out = tmp_path / "coco"
    settings = {**FAST, "n": 4, "selection": "study", "selection_k": 2, "mask_from": "source",
                "resize": "squash", "caption_from": "source"}
    manifest = build_dataset("inpaint", out, settings, source=f"coco:{coco}", tiny_dir=tiny_dir)
    assert manifest["n"] == 2 and manifest["exhausted"] is True
    assert _roles(manifest) == {"clip"}  # COCO captions, instance masks: no captioner, no SAM
    assert "top 2 of 4" in manifest["source"]["selection"]
    rows = list(iter_rows(out))
    assert len({r["source_id"] for r in rows}) == 2
    for row in rows:
        assert row["entity"] == "bus"  # the person is under 5 % of the image: dropped
        several = any("Two" in c for c in row["captions"])
        # the study's crop, by hand: one bus (10, 20)-(70, 60): side int(60 * 1.5) = 90 around
        # (40, 40), cut at the border; both buses (10, 20)-(140, 80): side 195 around (75, 50)
        expected_crop = [0, 0, 172, 147] if several else [0, 0, 85, 85]
        assert row["crop_box"] == expected_crop
        full = Image.new("L", (W, H), 0)
        for box in (BUS1, BUS2) if several else (BUS1,):
            ImageDraw.Draw(full).polygon(_rect(*box), fill=255)
        squashed = full.crop(expected_crop).resize((S, S))
        expected = np.where(np.asarray(squashed) >= 128, 255, 0)
        assert np.array_equal(np.asarray(row["mask"]), expected)


def test_coco_by_id_order_with_model_masks_is_unchanged(coco, tmp_path, tiny_dir):
    manifest = build_dataset("img2img", tmp_path / "ids", {**FAST, "n": 2},
                             source=f"coco:{coco}", tiny_dir=tiny_dir)
    rows = list(iter_rows(tmp_path / "ids", columns=["source_id"]))
    assert [r["source_id"] for r in rows] == ["coco:1", "coco:2"]
    assert "selection" not in manifest["source"]


def test_one_object_rule():
    from ldmdata.builders.inpaint import one_object

    assert one_object(["A bus parked in a street.", "A network of roads."])  # whole words only
    assert not one_object(["A bus parked.", "Two buses in a street."])
    assert not one_object(["SEVERAL cats on a sofa"]) and one_object([])
