"""Safe decoding of untrusted image inputs into clean 8-bit RGB.

:func:`load_rgb` either returns a plain RGB image (no metadata, EXIF orientation applied, alpha
composited on white, high bit depths scaled) or raises :class:`InputRejected` with a short, stable
reason that the builder records in ``rejects.jsonl``.
"""

from __future__ import annotations

import io
import re
import threading
import warnings

import numpy as np
from PIL import Image, ImageFile

from ldmdata.errors import InputRejected, LdmdataError
from ldmdata.sources.base import SourceItem

# Formats we let Pillow open (those this Pillow build has). Everything else (EPS/PDF run external
# programs, exotic scientific formats) is refused as "not an image".
Image.init()
DECODE_FORMATS = tuple(
    name
    for name in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "JPEG2000", "AVIF")
    if name in Image.OPEN
)

_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_EXIF_ORIENTATION = 274
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_WARNINGS_LOCK = threading.Lock()
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


def load_rgb(item: SourceItem, max_pixels: int = 64_000_000, min_side: int = 64) -> Image.Image:
    """Decode ``item`` (its ``image`` or its encoded ``data``) into a clean 8-bit RGB image.

    The header's size is checked against ``max_pixels`` and ``min_side`` before any pixel is
    decoded. Raises :class:`InputRejected` for anything unusable.
    """
    if item.image is not None:
        image = item.image
        _check_size(image.size, max_pixels, min_side)
        return _to_rgb(image)
    if item.data is None:
        raise InputRejected("no image data")
    if len(item.data) == 0:
        raise InputRejected("empty file")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise LdmdataError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set in this process; truncated inputs "
            "would be silently padded"
        )
    try:
        image = _open_header(item.data)
    except Image.UnidentifiedImageError as exc:
        raise InputRejected("not an image") from exc
    except Exception as exc:  # Pillow's bomb error, or a header that breaks part way
        raise _decode_failure(exc) from exc
    _check_size(image.size, max_pixels, min_side)  # from the header, before decoding
    try:
        image.load()
    except Exception as exc:  # any decoder failure on untrusted bytes rejects this input
        raise _decode_failure(exc) from exc
    return _to_rgb(_apply_orientation(image))


def _open_header(data: bytes) -> ImageFile.ImageFile:
    """Parse the header (no pixels yet) without letting Pillow's bomb warning out.

    Our ``max_pixels`` check replaces that warning (Pillow warns above ~89 Mpx). For the formats
    we allow, Pillow only checks sizes while opening, so ``load()`` needs no such guard.
    ``catch_warnings`` swaps process-wide state, hence the lock for decoding threads.
    """
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=DECODE_FORMATS)


def _decode_failure(exc: Exception) -> InputRejected:
    """The reject reason for an exception Pillow raised while opening or decoding."""
    if isinstance(exc, Image.DecompressionBombError):  # over Pillow's hard limit (2 x 89 Mpx)
        found = _BOMB_PIXELS.search(str(exc))
        return InputRejected(f"too large ({found.group(1) if found else '?'} pixels)")
    if "truncated" in str(exc).lower():
        return InputRejected("truncated image")
    return InputRejected("corrupt image")


def _check_size(size: tuple[int, int], max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise InputRejected(f"too large ({width}x{height} pixels)")
    if min(width, height) < min_side:
        raise InputRejected(f"too small ({width}x{height})")


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF orientation says; unreadable EXIF leaves the pixels as stored."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # malformed EXIF block: keep the stored orientation
        return image
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> a fresh RGB image without metadata."""
    if image.mode.startswith("I") or image.mode == "F":
        image = _scale_to_l(image)
    elif image.mode == "1":
        image = image.convert("L")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    else:
        try:
            rgb = image.convert("RGB")
        except ValueError as exc:
            raise InputRejected(f"unsupported mode ({image.mode})") from exc
    rgb.info = {}
    return rgb


def _scale_to_l(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer or float grayscale to 8 bits without clipping.

    ``I;16*`` uses the full 16-bit range. ``I`` and ``F`` use the smallest standard range that
    holds the data ([0, 1] for floats, [0, 255], [0, 65535]); other data is stretched min..max.
    """
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        scaled = (values.astype(np.uint32) * 255 + 32767) // 65535
        return Image.fromarray(scaled.astype(np.uint8))
    data = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(data.min()), float(data.max())
    ranges = (1.0, 255.0, 65535.0) if image.mode == "F" else (255.0, 65535.0)
    top = next((r for r in ranges if low >= 0 and high <= r), None)
    if top is not None:
        data = data * (255.0 / top)
    elif high > low:
        data = (data - low) * (255.0 / (high - low))
    else:
        data = np.zeros_like(data)
    return Image.fromarray(np.rint(data).astype(np.uint8))
