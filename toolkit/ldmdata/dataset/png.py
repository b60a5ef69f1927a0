"""Deterministic PNG encoding of the images a dataset stores (no metadata, fixed zlib level)."""

from __future__ import annotations

import io

from PIL import Image

# zlib level 1 encodes a 512x512 photo ~3x faster than Pillow's default 6 for ~10% more bytes
# (measured: 30 ms vs 89 ms, 469 kB vs 427 kB); the output is byte-identical run to run.
PNG_COMPRESS_LEVEL = 1


def encode_png(image: Image.Image) -> bytes:
    """Encode the pixels of ``image`` as PNG bytes (no metadata), identical for equal pixels."""
    if image.info:
        image = image.copy()
        image.info = {}
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
