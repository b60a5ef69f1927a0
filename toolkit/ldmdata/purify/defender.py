"""Apply one :class:`Defence` to batches of PIL images."""

from __future__ import annotations

from PIL import Image

from ldmdata.errors import LdmdataError
from ldmdata.purify.diffusion import diffpure, gridpure, noisy_upscale
from ldmdata.purify.impress import impress
from ldmdata.purify.pixels import blur, jpeg, noise, resize
from ldmdata.purify.spec import MODEL_NAMES, Defence
from ldmdata.seeds import derive_seed


class Defender:
    """Applies one :class:`Defence`; ``pipe`` is the pipeline of its ``model_kind`` if any."""

    def __init__(self, defence: Defence, pipe=None):
        kind = defence.model_kind
        if kind is not None and pipe is None:
            raise LdmdataError(
                f"the {defence.method} defence needs the {MODEL_NAMES[kind]} pipeline")
        self.defence, self.pipe = defence, pipe

    def __call__(self, images: list[Image.Image], keys: list[str]) -> list[Image.Image]:
        """The defended images; ``keys[i]`` (image i's id) seeds its random draws."""
        p, method = self.defence.params, self.defence.method
        for image in images:
            self.defence.check_size(*image.size)
        if method == "jpeg":
            return [jpeg(im, p["quality"]) for im in images]
        if method == "blur":
            return [blur(im, p["sigma"]) for im in images]
        if method == "noise":
            return [noise(im, p["std"], derive_seed(p["seed"], "noise", k))
                    for im, k in zip(images, keys, strict=True)]
        if method == "resize":
            return [resize(im, p["factor"], p["resample"]) for im in images]
        if method == "diffpure":
            return diffpure(self.pipe, images, keys, p)
        if method == "gridpure":
            return gridpure(self.pipe, images, keys, p)
        if method == "impress":
            return impress(self.pipe.vae, images, keys, p)
        return noisy_upscale(self.pipe, images, keys, p)
