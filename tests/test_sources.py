"""Image sources: synthetic scenes, folders, COCO files, Hugging Face datasets, and spec parsing."""

from __future__ import annotations

import io
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ldmdata.errors import InputRejected, LdmdataError
from ldmdata.sources import (
    SCHEMES,
    CocoSource,
    FolderSource,
    HfSource,
    SourceItem,
    SyntheticSource,
    open_source,
)
from ldmdata.sources.coco import decode_rle_string, segmentation_mask
from ldmdata.sources.decode import load_rgb
from ldmdata.sources.synthetic import COLORS

# ---------------------------------------------------------------------------------------------
# helpers


def _assert_same_items(left: list[SourceItem], right: list[SourceItem]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert (a.index, a.source_id, a.data) == (b.index, b.source_id, b.data)
        assert (a.captions, a.labels) == (b.captions, b.labels)
        assert list(a.masks) == list(b.masks)
        assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
        assert (a.image is None) == (b.image is None)
        if a.image is not None:
            assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def _assert_resumes(source, start: int, count: int | None = None) -> None:
    """``iterate(start)`` is exactly the tail of ``iterate(0)``."""
    total = source.size()
    stop = start + count if count is not None else total
    assert stop is not None
    whole = list(itertools.islice(source.iterate(0), stop))
    tail = list(itertools.islice(source.iterate(start), stop - start))
    assert [item.index for item in tail] == list(range(start, stop))
    _assert_same_items(whole[start:], tail)


def _jpeg(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_is_a_pure_function_of_seed_and_index():
    first, again = SyntheticSource(seed=7), SyntheticSource(seed=7)
    _assert_same_items([first.item(i) for i in range(5)], [again.item(i) for i in range(5)])
    other = SyntheticSource(seed=8)
    assert not np.array_equal(np.asarray(first.item(3).image), np.asarray(other.item(3).image))
    assert not np.array_equal(np.asarray(first.item(3).image), np.asarray(first.item(4).image))
    _assert_resumes(first, start=4, count=6)
    assert first.size() is None
    assert first.describe()["seed"] == 7 and first.spec == "synthetic:640x480"


def test_synthetic_masks_are_exact_and_the_main_entity_is_largest():
    source = SyntheticSource(seed=0)
    for item in itertools.islice(source.iterate(), 60):
        pixels = np.asarray(item.image)
        assert item.image.size == (640, 480)
        assert 1 <= len(item.labels) <= 3 and 1 <= len(item.captions) <= 3
        assert list(item.masks) == item.labels
        union = np.zeros((480, 640), bool)
        for label, mask in item.masks.items():
            color = COLORS[label.split()[0]]
            assert mask.dtype == bool and mask.shape == (480, 640)
            assert (pixels[mask] == color).all(), label
            assert not (union & mask).any()  # visible masks do not overlap
            union |= mask
        for label in item.labels:  # no painted pixel of a shape colour is left outside its mask
            color = COLORS[label.split()[0]]
            assert not (pixels[~union] == color).all(axis=-1).any(), label
        areas = [int(item.masks[label].sum()) for label in item.labels]
        assert areas == sorted(areas, reverse=True)
        assert 0.08 <= areas[0] / union.size <= 0.45
        assert all(item.labels[0] in caption for caption in item.captions)
        for label in item.labels[1:]:
            assert label in item.captions[0]


def test_synthetic_items_pass_load_rgb_at_any_size():
    source = open_source("synthetic:96x64", seed=3)
    assert source.spec == "synthetic:96x64"
    for item in itertools.islice(source.iterate(), 20):
        image = load_rgb(item, min_side=32)
        assert image.size == (96, 64)
        assert all(mask.shape == (64, 96) for mask in item.masks.values())


# ---------------------------------------------------------------------------------------------
# folder: real photographs from scikit-image, sidecars


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    skimage = pytest.importorskip("skimage")
    data = Path(skimage.__file__).parent / "data"
    folder = tmp_path_factory.mktemp("photos")
    layout = {
        "astronaut.png": "astronaut.png",
        "camera.png": "camera.png",
        "coffee.png": "coffee.png",
        "nested/chelsea.png": "chelsea.png",
        "nested/deeper/rocket.jpg": "rocket.jpg",
        "motorcycle_left.png": "motorcycle_left.png",
        "hubble_deep_field.jpg": "hubble_deep_field.jpg",
    }
    for target, name in layout.items():
        (folder / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / name, folder / target)
    (folder / "astronaut.txt").write_text("an astronaut in a spacesuit\n\n  with a flag  \n")
    (folder / "coffee.json").write_text(
        json.dumps({"captions": ["a cup of coffee"], "labels": ["cup", "saucer"]})
    )
    (folder / "nested" / "chelsea.txt").write_text("a ginger cat\n")
    (folder / "nested" / "chelsea.json").write_text(json.dumps({"labels": ["cat"]}))
    (folder / "notes.md").write_text("not an image")
    return folder


def test_folder_of_real_photographs(photos):
    source = open_source(f"folder:{photos}")
    assert isinstance(source, FolderSource) and source.size() == 7
    ids = [item.source_id for item in source.iterate()]
    assert ids == sorted(ids) and "nested/deeper/rocket.jpg" in ids and "notes.md" not in ids
    for item in source.iterate():
        with Image.open(photos / item.source_id) as reference:
            size = reference.size
        image = load_rgb(item)
        assert image.mode == "RGB" and image.size == size
        assert item.masks == {}
    camera = load_rgb(next(i for i in source.iterate() if i.source_id == "camera.png"))
    pixels = np.asarray(camera)
    assert (pixels[..., 0] == pixels[..., 1]).all() and pixels.std() > 20  # grey, full contrast
    assert source.describe() == {
        "spec": f"folder:{photos}",
        "kind": "folder",
        "path": str(photos),
        "count": 7,
    }
    _assert_resumes(source, start=3)


def test_folder_sidecars(photos):
    items = {item.source_id: item for item in FolderSource(photos).iterate()}
    assert items["astronaut.png"].captions == ["an astronaut in a spacesuit", "with a flag"]
    assert items["coffee.png"].captions == ["a cup of coffee"]
    assert items["coffee.png"].labels == ["cup", "saucer"]
    assert items["nested/chelsea.png"].captions == ["a ginger cat"]
    assert items["nested/chelsea.png"].labels == ["cat"]
    assert items["nested/deeper/rocket.jpg"].captions == []


def test_folder_rejects_bad_sidecars_and_empty_folders(tmp_path):
    (tmp_path / "a.png").write_bytes(_jpeg((80, 80), (1, 2, 3)))
    (tmp_path / "a.json").write_text('{"captions": "not a list"}')
    with pytest.raises(LdmdataError, match="must be a list of strings"):
        FolderSource(tmp_path)
    (tmp_path / "a.json").write_text("{broken")
    with pytest.raises(LdmdataError, match="cannot read sidecar"):
        FolderSource(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    with pytest.raises(LdmdataError, match="has no image files"):
        FolderSource(empty)
    with pytest.raises(LdmdataError, match="is not a folder"):
        FolderSource(tmp_path / "a.png")


# ---------------------------------------------------------------------------------------------
# COCO: a tiny annotation set written here, with polygon and RLE instances

W, H = 120, 80


def _rle_counts(mask: np.ndarray) -> list[int]:
    """Run lengths over the column-major pixels, starting with a run of zeros (test encoder)."""
    flat = mask.T.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0, *runs]


def _rle_string(counts: list[int]) -> str:
    """COCO's compressed RLE string (test encoder, written from the format's description)."""
    out = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        while True:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            out.append(chr(48 + (group | (0x20 if more else 0))))
            if not more:
                break
    return "".join(out)


def _disk(cx: int, cy: int, r: int) -> np.ndarray:
    y, x = np.mgrid[:H, :W]
    return (x - cx) ** 2 + (y - cy) ** 2 <= r**2


def _block(left: int, top: int, right: int, bottom: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[top:bottom, left:right] = True
    return mask


PERSON, BUS = _disk(30, 40, 20), _block(60, 10, 110, 70)


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    (root / "val2017").mkdir()
    ids = [9, 5, 2, 7]  # listed out of order on purpose
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": W, "height": H} for i in ids]
    for i in ids:
        (root / "val2017" / f"{i:012d}.jpg").write_bytes(_jpeg((W, H), (10 * i, 80, 160)))

    def poly(ann_id, image_id, cat, polygons, area):
        return {"id": ann_id, "image_id": image_id, "category_id": cat, "iscrowd": 0,
                "segmentation": polygons, "area": area}  # fmt: skip

    instances = [
        # image 2: two cats (polygons) and a small two-part dog that the 5 % box rule drops
        poly(1, 2, 1, [[20, 10, 60, 10, 60, 50, 20, 50]], 1600.0),
        poly(2, 2, 1, [[70, 10, 100, 10, 100, 30, 70, 30]], 600.0),
        poly(3, 2, 2, [[5, 60, 15, 60, 15, 75, 5, 75], [16, 60, 22, 60, 22, 70, 16, 70]], 250),
        # image 5: compressed RLE person, uncompressed RLE bus, four small polygons
        {"id": 4, "image_id": 5, "category_id": 3, "iscrowd": 0, "area": float(PERSON.sum()),
         "segmentation": {"size": [H, W], "counts": _rle_string(_rle_counts(PERSON))}},
        {"id": 5, "image_id": 5, "category_id": 4, "iscrowd": 1, "area": float(BUS.sum()),
         "segmentation": {"size": [H, W], "counts": _rle_counts(BUS)}},
        poly(6, 5, 5, [[0, 0, 10, 0, 10, 5, 0, 5]], 50.0),
        poly(7, 5, 6, [[0, 70, 6, 70, 6, 75, 0, 75]], 30.0),
        poly(8, 5, 5, [[112, 0, 116, 0, 116, 5, 112, 5]], 20.0),
        poly(9, 5, 6, [[112, 70, 114, 70, 114, 75, 112, 75]], 10.0),
        # image 9: only two small instances: both stay
        poly(10, 9, 5, [[0, 0, 10, 0, 10, 5, 0, 5]], 50.0),
        poly(11, 9, 6, [[0, 70, 6, 70, 6, 75, 0, 75]], 30.0),
    ]  # fmt: skip
    names = ["cat", "dog", "person", "bus", "bird", "kite"]
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(names)]
    captions = [
        {"id": 100 + k, "image_id": i, "caption": f" caption {k} of image {i} "}
        for k, i in enumerate([2, 2, 5, 7, 9, 9, 9])
    ]
    dump = {"images": images, "categories": categories, "annotations": instances}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(dump))
    dump = {"images": images, "annotations": captions}
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps(dump))
    return root


def test_coco_items_captions_labels_and_masks(coco):
    source = open_source(f"coco:{coco / 'annotations' / 'instances_val2017.json'}")
    assert isinstance(source, CocoSource) and source.size() == 4
    items = list(source.iterate())
    assert [item.source_id for item in items] == ["coco:2", "coco:5", "coco:7", "coco:9"]
    two, five, seven, nine = items
    assert two.captions == ["caption 0 of image 2", "caption 1 of image 2"]  # sibling file found
    assert two.labels == ["cat"]  # the dog is under 5 % and more than 2 instances remained
    cat = two.masks["cat"]
    assert abs(int(cat.sum()) - 2200) <= 2 * (40 + 40 + 30 + 20) + 4  # polygon edges included
    assert cat[30, 40] and cat[20, 85] and not cat[60, 10] and not cat[40, 80]
    assert five.labels == ["bus", "person"]  # ordered by area; 4 small ones dropped
    assert np.array_equal(five.masks["bus"], BUS)
    assert np.array_equal(five.masks["person"], PERSON)
    assert seven.labels == [] and seven.masks == {} and seven.captions == ["caption 3 of image 7"]
    assert nine.labels == ["bird", "kite"]  # at least two are kept
    for item in items:
        image = load_rgb(item)
        assert image.size == (W, H)
        assert all(mask.shape == (H, W) for mask in item.masks.values())
    _assert_resumes(source, start=2)


def test_coco_spec_forms_and_missing_files(coco, tmp_path):
    captions = coco / "annotations" / "captions_val2017.json"
    source = open_source(f"coco:{captions}:{coco / 'val2017'}")
    assert source.describe()["count"] == 4 and len(source.describe()["annotations"]) == 2
    assert open_source(source.spec).spec == source.spec
    only = tmp_path / "ann"
    only.mkdir()
    shutil.copyfile(captions, only / "captions_val2017.json")
    alone = CocoSource(only / "captions_val2017.json", coco / "val2017")
    assert all(item.labels == [] and item.captions for item in alone.iterate())
    with pytest.raises(LdmdataError, match="images folder"):
        CocoSource(only / "captions_val2017.json")  # ann/../val2017 does not exist
    with pytest.raises(LdmdataError, match="nope.json"):
        open_source(f"coco:{coco / 'annotations' / 'nope.json'}")
    (coco / "val2017" / "000000000009.jpg").rename(tmp_path / "moved.jpg")
    try:
        with pytest.raises(LdmdataError, match=r"1 of 4 COCO images are missing"):
            CocoSource(captions)
    finally:
        (tmp_path / "moved.jpg").rename(coco / "val2017" / "000000000009.jpg")


def test_rle_decoding():
    assert decode_rle_string("325V1") == [3, 2, 5, 40]  # worked by hand: 40 - 2 = 38 = 6 + 32
    assert decode_rle_string("3:5J") == [3, 10, 5, 4]  # 4 - 10 = -6, sign bit 0x10 set
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((H, W)) < rng.uniform(0.05, 0.95)
        counts = _rle_counts(mask)
        assert decode_rle_string(_rle_string(counts)) == counts
        rle = {"size": [H, W], "counts": _rle_string(counts)}
        assert np.array_equal(segmentation_mask(rle, W, H), mask)
    with pytest.raises(ValueError, match="do not cover"):
        segmentation_mask({"size": [H, W], "counts": [5, 5]}, W, H)
    with pytest.raises(ValueError, match="does not match"):
        segmentation_mask({"size": [W, H], "counts": [W * H]}, W, H)
    with pytest.raises(ValueError, match="ends inside"):
        decode_rle_string("3V")


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets, offline: local parquet written with `datasets`

HF_COLORS = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200)]


@pytest.fixture(scope="module")
def parquet_dataset(tmp_path_factory) -> Path:
    datasets = pytest.importorskip("datasets")
    root = tmp_path_factory.mktemp("hfdata")
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "captions": datasets.List(datasets.Value("string")),
            "label": datasets.ClassLabel(names=["warm", "cool"]),
        }
    )
    table = datasets.Dataset.from_dict(
        {
            "image": [Image.new("RGB", (72, 72), c) for c in HF_COLORS],
            "captions": [[f"colour {k}", f"swatch {k}"] for k in range(len(HF_COLORS))],
            "label": [0, 1, 1, 0, 1],
        },
        features=features,
    )
    table.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


def test_hf_local_parquet(parquet_dataset):
    source = open_source(f"hf:{parquet_dataset}")
    assert isinstance(source, HfSource)
    assert source.image_column == "image" and source.caption_columns == ["captions"]
    items = list(source.iterate())
    assert len(items) == 5 and source.size() in (None, 5)
    for k, item in enumerate(items):
        assert item.source_id == f"hf:{parquet_dataset}::train:{k}"
        assert item.captions == [f"colour {k}", f"swatch {k}"]
        assert item.labels == [["warm", "cool"][[0, 1, 1, 0, 1][k]]]
        assert isinstance(item.data, bytes)
        assert _close(np.asarray(load_rgb(item))[0, 0], HF_COLORS[k])
    assert source.describe()["label_column"] == "label"
    assert open_source(source.spec).spec == source.spec
    _assert_resumes(source, start=2, count=3)


def test_hf_image_column_found_from_the_rows(tmp_path):
    datasets = pytest.importorskip("datasets")
    png = io.BytesIO()
    Image.new("RGB", (70, 70), (0, 0, 200)).save(png, "PNG")
    rows = {"text": ["a blue square", ""], "picture": [{"bytes": png.getvalue()}, {"bytes": None}]}
    datasets.Dataset.from_dict(rows).to_parquet(str(tmp_path / "train.parquet"))
    source = HfSource(str(tmp_path))
    assert source.image_column == "picture" and source.caption_columns == ["text"]
    first, second = source.iterate()
    assert first.captions == ["a blue square"] and first.labels == []
    assert _close(np.asarray(load_rgb(first))[5, 5], (0, 0, 200))
    assert second.data is None and second.captions == []
    with pytest.raises(InputRejected, match="no image data"):
        load_rgb(second)


def test_hf_failures_are_one_line(parquet_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for spec in ("hf:nobody-xyz/no-such-dataset", f"hf:{parquet_dataset}::validation"):
        with pytest.raises(LdmdataError) as caught:
            open_source(spec)
        assert "\n" not in str(caught.value) and spec in str(caught.value)
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["no picture"]}).to_parquet(str(tmp_path / "t.parquet"))
    with pytest.raises(LdmdataError, match="has no image column"):
        HfSource(str(tmp_path))


def _close(pixel: np.ndarray, color: tuple[int, int, int]) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= 8)


# ---------------------------------------------------------------------------------------------
# specs


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("flickr:abc", "must be one of synthetic, folder, coco, hf"),
        ("", "must be one of"),
        ("synthetic:big", "synthetic:WIDTHxHEIGHT"),
        ("synthetic:10x10", "outside 32..8192"),
        ("folder:", "needs a path"),
        ("folder:/no/such/folder", "/no/such/folder"),
        ("coco:/no/such/instances_val2017.json", "/no/such/instances_val2017.json"),
        ("hf:a:b:c:d", "hf:NAME"),
        ("hf::cfg", "hf:NAME"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(LdmdataError, match=message.replace(".", r"\.")):
        open_source(spec)


def test_every_source_describes_itself(photos, coco, parquet_dataset):
    specs = [
        "synthetic",
        f"folder:{photos}",
        f"coco:{coco / 'annotations' / 'captions_val2017.json'}",
        f"hf:{parquet_dataset}",
    ]
    assert SCHEMES == ("synthetic", "folder", "coco", "hf", "ldm-robustness")
    for spec in specs:
        source = open_source(spec)
        description = source.describe()
        assert description["spec"] == source.spec and description["kind"] == spec.split(":")[0]
        assert json.loads(json.dumps(description)) == description
        length = source.size()
        assert length is None or isinstance(length, int)


def test_an_unreachable_hub_is_one_plain_line_without_retries(monkeypatch):
    import datasets
    from huggingface_hub import HfApi, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def unreachable(self, name, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    def never(*args, **kwargs):
        raise AssertionError("datasets must not be asked (it retries for ~30 s)")

    monkeypatch.setattr(HfApi, "dataset_info", unreachable)
    monkeypatch.setattr(datasets, "load_dataset", never)
    with pytest.raises(LdmdataError) as caught:
        open_source("hf:someone/photos::train")
    message = str(caught.value)
    assert "\n" not in message and "cannot be reached" in message
    assert message.startswith("cannot open dataset hf:someone/photos::train: ")


def test_cli_errors_print_colons_as_typed(tmp_path):
    """rich would turn ':train:' into an emoji; error lines are printed as written."""
    from typer.testing import CliRunner

    from ldmdata.cli.app import app

    result = CliRunner().invoke(app, ["build", "img2img", "--source", "hf:x:y:train:z",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "hf:x:y:train:z" in result.output and "🚋" not in result.output
