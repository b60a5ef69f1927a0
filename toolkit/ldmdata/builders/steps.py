"""Steps every builder shares: loading the models it needs, captions, and edit prompts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ldmdata.builders.settings import captions_needed
from ldmdata.builders.text import has_words
from ldmdata.errors import InputRejected
from ldmdata.models.loading import resolved_commit
from ldmdata.models.refs import ModelRef
from ldmdata.sources.base import SourceItem


def roles_needed(task: str, settings: dict) -> list[str]:
    """Model roles a build with these (resolved) settings may load (recorded in the manifest).
    CLIP always: it ranks captions and labels and scores every prompt, given or written."""
    roles = ["clip"]
    caption_from = settings["caption_from"]
    if caption_from == "model" or (caption_from == "auto" and captions_needed(task, settings)):
        roles.append("captioner")
    if settings["prompts_from"] == "model" and settings["prompt_writer"] == "llm":
        roles.append("llm")
    if task == "inpaint" and settings["mask_from"] == "model":
        roles.append("detector")
        official = settings["segmenter_backend"] == "segment-anything"
        roles.append("segmenter_official" if official else "segmenter")
    return roles


@dataclass
class Models:
    """The models of one build, each loaded on first use (a build from source captions never
    loads the captioner)."""

    refs: dict[str, ModelRef]
    settings: dict
    _loaded: dict = field(default_factory=dict)

    def _get(self, role: str, factory):
        if role not in self._loaded:
            self._loaded[role] = factory(self.refs[role])
        return self._loaded[role]

    def records(self, planned: list[dict]) -> list[dict]:
        """``planned`` model records plus, for each loaded Hub model, the commit it resolved
        to (``resolved_revision``), so a revision like "main" is still traceable."""
        out = []
        for record in planned:
            ref = self.refs.get(record["role"])
            commit = resolved_commit(ref) if ref and record["role"] in self._loaded else None
            out.append({**record, **({"resolved_revision": commit} if commit else {})})
        return out

    @property
    def device(self) -> str:
        return self.settings["device"]

    @property
    def clip(self):
        from ldmdata.models.clip import ClipScorer

        return self._get("clip", lambda ref: ClipScorer(ref, device=self.device))

    @property
    def captioner(self):
        from ldmdata.models.captioner import Captioner

        return self._get("captioner", lambda ref: Captioner(ref, device=self.device))

    @property
    def prompt_writer(self):
        from ldmdata.builders.prompts import make_prompt_writer

        kind = self.settings["prompt_writer"]
        if "prompt_writer" not in self._loaded:
            self._loaded["prompt_writer"] = make_prompt_writer(
                kind, self.refs.get("llm"), device=self.device
            )
        return self._loaded["prompt_writer"]

    @property
    def detector(self):
        from ldmdata.models.detector import Detector

        threshold = self.settings["detector_threshold"]
        return self._get(
            "detector", lambda ref: Detector(ref, device=self.device, threshold=threshold)
        )

    @property
    def segmenter(self):
        from ldmdata.models.segmenter import load_segmenter

        backend = self.settings["segmenter_backend"]
        role = "segmenter_official" if backend == "segment-anything" else "segmenter"
        return self._get(role, lambda ref: load_segmenter(ref, backend, device=self.device))


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of one input: a pure function of (build seed, input position)."""
    return np.random.default_rng([seed, index])


def item_seed(seed: int, index: int) -> int:
    return int(item_rng(seed, index).integers(0, 2**31 - 1))


def choose_captions(
    images: list[Image.Image], source_captions: list[list[str]], settings: dict, models: Models,
    needed: bool = True,
) -> list[list[str] | InputRejected]:
    """Captions per image, best first: the source's (ranked by CLIP score, top ``num_captions``,
    as the study ranked COCO's) or the captioner's. When nothing ``needed`` them, an image
    without source captions gets none (the captioner runs only under ``caption_from: model``)."""
    mode = settings["caption_from"]
    source_captions = [[c for c in caps if has_words(c)] for caps in source_captions]
    use_source = [bool(c) and mode != "model" for c in source_captions]
    result: list[list[str] | InputRejected] = [[] for _ in images]
    ranked = [i for i, use in enumerate(use_source) if use]
    if ranked:
        scores = models.clip.image_text_scores(
            [images[i] for i in ranked], [source_captions[i] for i in ranked]
        )
        for i, row in zip(ranked, scores, strict=True):
            order = np.argsort(-np.asarray(row), kind="stable")[: settings["num_captions"]]
            result[i] = [source_captions[i][j] for j in order]
    missing = [i for i, use in enumerate(use_source) if not use]
    if not needed and mode != "model":
        return result
    if missing and mode == "source":
        for i in missing:
            result[i] = InputRejected("no source caption")
    elif missing:
        captions = models.captioner.caption([images[i] for i in missing])
        for i, caption in zip(missing, captions, strict=True):
            result[i] = (
                [caption] if has_words(caption) else InputRejected("model caption has no words")
            )
    return result


def choose_prompts(
    images: list[Image.Image], captions: list[list[str]], seeds: list[int], settings: dict,
    models: Models,
) -> list[tuple[list[str], list[float]] | InputRejected]:
    """``num_candidates`` edit prompts written from each image's captions, the best
    ``num_prompts`` kept by CLIP score against the image (highest first)."""
    if not images:
        return []
    k, m = settings["num_candidates"], settings["num_prompts"]
    flat_captions, flat_seeds, owner = [], [], []
    for i, (caps, seed) in enumerate(zip(captions, seeds, strict=True)):
        for j, caption in enumerate(caps):
            flat_captions.append(caption)
            flat_seeds.append(seed + j)
            owner.append(i)
    per_caption = -(-k // max(1, min(len(c) for c in captions)))  # ceil: enough for every image
    written = models.prompt_writer.write(flat_captions, per_caption, flat_seeds)
    candidates: list[list[str]] = [[] for _ in images]
    for i, prompts in zip(owner, written, strict=True):
        candidates[i].extend(prompts)
    candidates = [list(dict.fromkeys(c))[:k] for c in candidates]  # distinct, order kept
    scores = models.clip.image_text_scores(images, candidates)
    out: list[tuple[list[str], list[float]] | InputRejected] = []
    for cands, row in zip(candidates, scores, strict=True):
        if len(cands) < m:
            out.append(InputRejected(f"only {len(cands)} distinct prompts (< {m})"))
            continue
        order = np.argsort(-np.asarray(row), kind="stable")[:m]
        out.append(([cands[j] for j in order], [float(row[j]) for j in order]))
    return out


def source_prompts(
    images: list[Image.Image], given: list[list[str]], models: Models
) -> list[tuple[list[str], list[float]] | InputRejected]:
    """A source's own edit prompts, as given and in its order, with their CLIP scores."""
    live = [i for i, prompts in enumerate(given) if prompts]
    out: list[tuple[list[str], list[float]] | InputRejected] = [
        InputRejected("no source prompts") for _ in images
    ]
    if live:
        scores = models.clip.image_text_scores([images[i] for i in live], [given[i] for i in live])
        for i, row in zip(live, scores, strict=True):
            out[i] = (list(given[i]), [float(v) for v in row])
    return out


def prompts_for(
    images: list[Image.Image], items: list[SourceItem], captions: list[list[str]],
    seeds: list[int], settings: dict, models: Models,
) -> list[tuple[list[str], list[float]] | InputRejected]:
    """Edit prompts and their CLIP scores per image: the source's own under ``prompts_from:
    source``, else written from the captions and chosen by CLIP (:func:`choose_prompts`)."""
    if settings["prompts_from"] == "source":
        return source_prompts(images, [item.prompts for item in items], models)
    return choose_prompts(images, captions, seeds, settings, models)
