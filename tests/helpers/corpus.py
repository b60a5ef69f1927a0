"""A corpus of awkward image files (real bytes on disk) that every image loader must survive."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# The scene every accepted corpus file shows (before its own conversion): 160 wide, 96 high,
# left half red, right half blue, so rotations and colour conversions are checkable.
WIDTH, HEIGHT = 160, 96


def scene() -> Image.Image:
    """The reference RGB picture: red left half, blue right half."""
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:, : WIDTH // 2] = (220, 30, 30)
    pixels[:, WIDTH // 2 :] = (30, 30, 220)
    return Image.fromarray(pixels)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB but whose data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _gray16() -> bytes:
    ramp = np.linspace(0, 65535, WIDTH, dtype=np.float64).round().astype(np.uint16)
    return _encode(Image.fromarray(np.tile(ramp, (HEIGHT, 1))), "PNG")


def _gray32() -> bytes:
    ramp = np.linspace(-500_000, 2_000_000, WIDTH).round().astype(np.int32)
    return _encode(Image.fromarray(np.tile(ramp, (HEIGHT, 1))), "TIFF")


def _float() -> bytes:
    ramp = np.linspace(0.0, 1.0, WIDTH, dtype=np.float32)
    return _encode(Image.fromarray(np.tile(ramp, (HEIGHT, 1))), "TIFF")


def _palette_alpha() -> bytes:
    image = scene().quantize(colors=4)
    red_index = image.getpixel((0, 0))
    return _encode(image, "PNG", transparency=red_index)


def _rgba() -> bytes:
    image = scene().convert("RGBA")
    alpha = np.full((HEIGHT, WIDTH), 255, np.uint8)
    alpha[:, : WIDTH // 2] = 0  # red half fully transparent
    image.putalpha(Image.fromarray(alpha))
    return _encode(image, "PNG")


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[274] = 6  # stored pixels must be rotated 90 degrees clockwise for display
    return _encode(scene(), "JPEG", quality=95, exif=exif)


def _animated() -> bytes:
    frames = [Image.new("RGB", (WIDTH, HEIGHT), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _corrupt_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    data = bytearray(_encode(Image.fromarray(noise), "PNG"))
    start = data.find(b"IDAT") + 8
    data[start : start + 64] = bytes(range(64))
    return bytes(data)


def _truncated(fmt: str) -> bytes:
    noise = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    return data[: len(data) * 6 // 10]


def write_bad_corpus(folder: Path) -> dict[str, str | None]:
    """Write the corpus into ``folder``; return filename -> expected reject-reason prefix.

    ``None`` means the file must be accepted (converted to clean RGB where needed).
    """
    files: dict[str, tuple[bytes, str | None]] = {
        "good.jpg": (_encode(scene(), "JPEG", quality=95), None),
        "good.png": (_encode(scene(), "PNG"), None),
        "good.webp": (_encode(scene(), "WEBP", lossless=True), None),
        "GOOD-UPPER.JPG": (_encode(scene(), "JPEG", quality=95), None),
        "png-named.jpg": (_encode(scene(), "PNG"), None),
        "cmyk.jpg": (_encode(scene().convert("CMYK"), "JPEG", quality=95), None),
        "lab.tif": (_encode(scene().convert("LAB"), "TIFF"), None),
        "gray16.png": (_gray16(), None),
        "gray32.tif": (_gray32(), None),
        "float.tif": (_float(), None),
        "bilevel.png": (_encode(scene().convert("1"), "PNG"), None),
        "palette-alpha.png": (_palette_alpha(), None),
        "rgba.png": (_rgba(), None),
        "la.png": (_encode(scene().convert("LA"), "PNG"), None),
        "exif-rotated.jpg": (_exif_rotated(), None),
        "animated.gif": (_animated(), None),
        "zero-byte.jpg": (b"", "empty file"),
        "not-an-image.png": (b"this is a text file, not a picture\n" * 4, "not an image"),
        "truncated.jpg": (_truncated("JPEG"), "truncated image"),
        "truncated.png": (_truncated("PNG"), "truncated image"),
        "corrupt.png": (_corrupt_png(), "corrupt image"),
        "tiny-1x1.png": (_encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "too small (1x1)"),
        "thin-200x40.png": (_encode(Image.new("RGB", (200, 40)), "PNG"), "too small (200x40)"),
        # Over Pillow's own hard limit: Pillow refuses it while reading the header.
        "bomb.png": (bomb_png(30000, 30000), "too large"),
        # Between our 64 Mpx limit and Pillow's: our header check refuses it (Pillow only warns).
        "bomb-100mpx.png": (bomb_png(10000, 10000), "too large (10000x10000 pixels)"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: expected for name, (_, expected) in files.items()}
