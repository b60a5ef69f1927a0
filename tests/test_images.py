"""Safe decoding: every awkward file is converted to clean RGB or rejected with a stable reason."""

from __future__ import annotations

import io
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from helpers.corpus import HEIGHT, WIDTH, bomb_png, scene, write_bad_corpus
from ldmdata.dataset.png import encode_png
from ldmdata.errors import InputRejected, LdmdataError
from ldmdata.sources import FolderSource
from ldmdata.sources.base import SourceItem
from ldmdata.sources.decode import load_rgb

RED, BLUE, WHITE = (220, 30, 30), (30, 30, 220), (255, 255, 255)


def _load(data: bytes, **limits: int) -> Image.Image:
    return load_rgb(SourceItem(index=0, source_id="test", data=data), **limits)


def _reason(data: bytes, **limits: int) -> str:
    with pytest.raises(InputRejected) as caught:
        _load(data, **limits)
    return caught.value.reason


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_bad_corpus(folder)


def _near(pixel: np.ndarray, color: tuple[int, int, int], tolerance: int = 12) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tolerance)


def test_whole_corpus_through_folder_source(corpus):
    folder, expected = corpus
    source = FolderSource(folder)
    assert source.size() == len(expected)
    seen = {}
    for item in source.iterate():
        try:
            image = load_rgb(item)
        except InputRejected as rejected:
            seen[item.source_id] = rejected.reason
            continue
        seen[item.source_id] = None
        assert image.mode == "RGB"
        assert image.info == {}
        assert min(image.size) >= 64
    assert set(seen) == set(expected)
    for name, prefix in expected.items():
        if prefix is None:
            assert seen[name] is None, f"{name} was rejected: {seen[name]}"
        else:
            assert seen[name] is not None and seen[name].startswith(prefix), (name, seen[name])


def test_lossless_and_converted_files_keep_their_colours(corpus):
    folder, _ = corpus
    for name in ("good.png", "good.webp", "png-named.jpg", "good.jpg", "cmyk.jpg", "lab.tif"):
        pixels = np.asarray(_load((folder / name).read_bytes()))
        assert pixels.shape == (HEIGHT, WIDTH, 3)
        assert _near(pixels[HEIGHT // 2, 10], RED), name
        assert _near(pixels[HEIGHT // 2, WIDTH - 10], BLUE), name


def test_exif_rotation_is_applied_and_dropped(corpus):
    folder, _ = corpus
    image = _load((folder / "exif-rotated.jpg").read_bytes())
    assert image.size == (HEIGHT, WIDTH)  # width and height swapped
    pixels = np.asarray(image)
    assert _near(pixels[10, HEIGHT // 2], RED)  # stored left half is now the top
    assert _near(pixels[WIDTH - 10, HEIGHT // 2], BLUE)
    assert not image.getexif()


@pytest.mark.parametrize("name", ["gray16.png", "gray32.tif", "float.tif"])
def test_high_bit_depth_grey_is_scaled_not_clipped(corpus, name):
    folder, _ = corpus
    pixels = np.asarray(_load((folder / name).read_bytes())).astype(int)
    row = pixels[HEIGHT // 2, :, 0]
    assert (pixels[..., 0] == pixels[..., 2]).all()
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[WIDTH // 2] - 128) <= 3
    assert (np.diff(row) >= 0).all()
    assert len(np.unique(row)) > 100  # clipping would leave a handful of levels


def test_sixteen_bit_uses_the_full_range():
    values = np.array([[0, 257, 32896, 65535] * 16] * 64, np.uint16)
    data = io.BytesIO()
    Image.fromarray(values).save(data, "PNG")
    row = np.asarray(_load(data.getvalue()))[0, :4, 0]
    assert row.tolist() == [0, 1, 128, 255]


@pytest.mark.parametrize("name", ["palette-alpha.png", "rgba.png"])
def test_transparency_is_composited_on_white(corpus, name):
    folder, _ = corpus
    pixels = np.asarray(_load((folder / name).read_bytes()))
    assert (pixels[:, : WIDTH // 2] == WHITE).all()  # the transparent red half
    assert _near(pixels[HEIGHT // 2, WIDTH - 10], BLUE, tolerance=20)


def test_half_transparency_blends_with_white():
    image = Image.new("RGBA", (64, 64), (200, 0, 0, 128))
    pixel = np.asarray(_load(_png(image)))[0, 0].astype(int)
    assert np.abs(pixel - [227, 127, 127]).max() <= 2


def test_animated_gif_gives_its_first_frame(corpus):
    folder, _ = corpus
    pixels = np.asarray(_load((folder / "animated.gif").read_bytes()))
    assert (pixels == (255, 0, 0)).all()


def test_bilevel_becomes_black_and_white(corpus):
    folder, _ = corpus
    pixels = np.asarray(_load((folder / "bilevel.png").read_bytes()))
    assert set(np.unique(pixels)) <= {0, 255}


def test_bombs_are_refused_from_the_header_without_pillow_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _reason(bomb_png(10000, 10000)) == "too large (10000x10000 pixels)"
        assert _reason(bomb_png(30000, 30000)) == "too large (900000000 pixels)"
        assert _reason(bomb_png(9000, 9000)) == "too large (9000x9000 pixels)"
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_threads_decode_like_one_thread_and_leave_warning_filters_alone(corpus):
    folder, expected = corpus
    datas = [(folder / name).read_bytes() for name in sorted(expected)] * 4

    def outcome(data: bytes) -> str | bytes:
        try:
            return np.asarray(_load(data)).tobytes()
        except InputRejected as rejected:
            return rejected.reason

    filters = list(warnings.filters)
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(outcome, datas))
    assert warnings.filters == filters
    assert threaded == [outcome(data) for data in datas]


def test_limits_are_parameters():
    data = _png(scene())
    assert _reason(data, max_pixels=10_000) == f"too large ({WIDTH}x{HEIGHT} pixels)"
    assert _reason(data, min_side=100) == f"too small ({WIDTH}x{HEIGHT})"
    assert _load(data, max_pixels=WIDTH * HEIGHT, min_side=HEIGHT).size == (WIDTH, HEIGHT)


def test_other_refusals():
    assert _reason(_png(scene())[:12]) == "not an image"
    jpeg = io.BytesIO()
    scene().save(jpeg, "JPEG")
    assert _reason(jpeg.getvalue()[:300]) == "truncated image"  # cut inside the header
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n"
    assert _reason(eps) == "not an image"  # Pillow would run Ghostscript on it
    with pytest.raises(InputRejected, match="no image data"):
        load_rgb(SourceItem(index=0, source_id="nothing"))


def test_truncated_images_are_never_padded(monkeypatch, corpus):
    folder, _ = corpus
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(LdmdataError, match="LOAD_TRUNCATED_IMAGES"):
        _load((folder / "truncated.jpg").read_bytes())


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV", "CMYK", "RGBA", "P", "L"])
def test_decoded_images_in_any_mode_become_rgb(mode):
    image = scene().quantize(colors=8) if mode == "P" else scene().convert(mode)
    result = load_rgb(SourceItem(index=0, source_id="decoded", image=image))
    assert result.mode == "RGB" and result.size == (WIDTH, HEIGHT)
    if mode != "L":
        pixels = np.asarray(result)
        assert _near(pixels[0, 0], RED, tolerance=6) and _near(pixels[-1, -1], BLUE, tolerance=6)


def test_decoded_images_obey_the_size_limits():
    tiny = SourceItem(index=0, source_id="tiny", image=Image.new("RGB", (10, 300)))
    with pytest.raises(InputRejected, match=r"too small \(10x300\)"):
        load_rgb(tiny)


def test_encode_png_is_deterministic_and_drops_metadata():
    image = scene()
    tagged = image.copy()
    tagged.info["icc_profile"] = b"not really a profile"
    tagged.info["dpi"] = (300, 300)
    first, second = encode_png(image), encode_png(tagged)
    assert first == second == encode_png(scene())
    assert b"iCCP" not in second
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(first))), np.asarray(image))
    assert tagged.info["icc_profile"] == b"not really a profile"  # the input is left alone


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
