"""Edit a clean dataset, an adversarial set or a defended set with a diffusers pipeline.

The pipelines are the real diffusers ones (img2img, inpainting, InstructPix2Pix, x4 upscaler)
called as a user would call them, one generator per sample seeded with the edit seed, so an
edit of an adversarial image and the edit of its clean image share every random draw. Work is
planned as ``(input row, edit prompt)`` pairs in input order and run in batches that never
straddle a shard, so an interrupted run resumes at its last committed shard.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import diffusers
import torch
from PIL import Image

from ldmdata.dataset import ShardedWriter, iter_rows
from ldmdata.dataset.inputs import InputSet, check_same_dataset, open_input
from ldmdata.dataset.jobs import JobOptions, batches, check_prompts
from ldmdata.dataset.png import encode_png
from ldmdata.edit.params import EditParams, check_editor, default_editor, resolve_edit_params
from ldmdata.engine import connect, run_batches
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import (
    describe_model,
    editor_ref,
    load_pipeline,
    pick_dtype,
    run_device,
)
from ldmdata.models.refs import ModelRef
from ldmdata.params import is_int
from ldmdata.provenance import code_version, source_fingerprint
from ldmdata.purify import Defence, Defender, parse_defence

KIND = "edit"
# The code that decides an edit's pixels: a set made by other code is redone, not resumed.
CODE = ("ldmdata.edit", "ldmdata.purify", "ldmdata.models.editors")

FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "sample_id": datasets.Value("string"),
    "source_id": datasets.Value("string"),
    "prompt_index": datasets.Value("int32"),
    "attack_prompt_index": datasets.Value("int32"),  # null for a clean input
    "prompt": datasets.Value("string"),
    "input_id": datasets.Value("string"),
    "input_kind": datasets.Value("string"),  # clean | adversarial | defended
    "origin": datasets.Value("string"),  # what the input's pixels started as: clean | adversarial
    "image": datasets.Image(),
})


@dataclass
class EditOptions(JobOptions):
    """Which pairs to edit (and how to run: :class:`JobOptions`).

    ``prompts``: ``all`` or the prompt indices to edit (for adversarial inputs: the attacked
    prompts to keep). ``prompt_index``: ``same`` edits with the attacked prompt (clean inputs:
    every selected prompt); an integer edits every input with that prompt (prompt transfer).
    ``limit``: the first N samples of the input. ``extra_config``: what else decides the
    output's identity (the DVC stage's run name, for instance).
    """

    prompts: str | list[int] = "all"
    prompt_index: str | int = "same"
    extra_config: dict = field(default_factory=dict)

    def check(self) -> None:
        super().check()
        check_prompts(self.prompts)
        if self.prompt_index != "same" and (not is_int(self.prompt_index)
                                            or self.prompt_index < 0):
            raise LdmdataError(
                f"prompt_index must be 'same' or an index >= 0, got {self.prompt_index!r}"
            )


def parse_prompt_index(text: str | int) -> str | int:
    if isinstance(text, int) or text == "same":
        return text
    try:
        return int(text)
    except ValueError:
        raise LdmdataError(f"--prompt-index takes 'same' or an index; got {text!r}") from None


# -- planning ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """One edit to make: input row ``row`` edited with prompt ``prompt_index``."""

    row: int
    id: str
    input_id: str
    sample_id: str
    source_id: str
    prompt_index: int
    attack_prompt_index: int | None
    prompt: str


def plan_pairs(images: InputSet, prompts: dict[str, list[str]], options: EditOptions) -> list[Pair]:
    """Every ``(input row, edit prompt)`` pair to edit, in input order."""
    pairs: list[Pair] = []
    samples: set[str] = set()
    for index, row in enumerate(images.rows(decode=False)):
        sample = row["sample_id"]
        if sample not in samples:
            if options.limit is not None and len(samples) >= options.limit:
                break
            samples.add(sample)
        if sample not in prompts:
            raise LdmdataError(f"{images.path}: sample {sample} is not in the dataset")
        texts = prompts[sample]
        attacked = row["attack_prompt_index"]
        if attacked is None:
            wanted = range(len(texts)) if options.prompts == "all" else options.prompts
            edit_ks = wanted if options.prompt_index == "same" else [options.prompt_index]
        else:
            if options.prompts != "all" and attacked not in options.prompts:
                continue
            edit_ks = [attacked if options.prompt_index == "same" else options.prompt_index]
        for k in edit_ks:
            if k >= len(texts):
                raise LdmdataError(f"sample {sample} has {len(texts)} prompts; no prompt index {k}")
            pair_id = f"{sample}-p{k}" if attacked is None else f"{sample}-a{attacked}-p{k}"
            pairs.append(Pair(index, pair_id, row["id"], sample, row["source_id"], k, attacked,
                              texts[k]))
    if not pairs:
        raise LdmdataError(f"nothing to edit in {images.path} with these prompts and limit")
    return pairs


def dataset_prompts(dataset: InputSet) -> dict[str, list[str]]:
    return {row["id"]: list(row["prompts"])
            for row in iter_rows(dataset.path, columns=["id", "prompts"], decode_images=False)}


def dataset_masks(dataset: InputSet, wanted: set[str]) -> dict[str, bytes]:
    """PNG bytes of the masks of the ``wanted`` samples (decoded when used)."""
    return {row["id"]: row["mask"]["bytes"]
            for row in iter_rows(dataset.path, columns=["id", "mask"], decode_images=False)
            if row["id"] in wanted}


class RowImages:
    """Input images by row index from a forward stream (read again to go back).

    With a defender, each row is defended once, in one batch with the rows of its group
    (see :func:`defence_groups`), so every worker defends it exactly as a local run does.
    """

    def __init__(self, images: InputSet, defender: Defender | None):
        self.images, self.defender = images, defender
        self._cache: dict[int, list] = {}  # row -> [id, image, defended image or None]
        self._open()

    def _open(self) -> None:
        self._rows, self._next = self.images.rows(decode=True), 0

    def _load(self, index: int) -> list:
        if index < self._next and index not in self._cache:  # released: read the set again
            self._open()
        while self._next <= index:
            row = next(self._rows)
            self._cache.setdefault(self._next, [row["id"], row["image"], None])
            self._next += 1
        return self._cache[index]

    def size(self, index: int) -> tuple[int, int]:
        """The input size of row ``index`` (every defence keeps it)."""
        return self._load(index)[1].size

    def get(self, indices: list[int], groups: dict[int, tuple[int, ...]]) -> list[Image.Image]:
        """The (defended) images of rows ``indices``; ``groups[i]``: the rows defended with i."""
        if self.defender is None:
            return [self._load(i)[1] for i in indices]
        for group in dict.fromkeys(groups[i] for i in indices if self._load(i)[2] is None):
            entries = [self._load(i) for i in group]
            for entry, image in zip(entries, self.defender([e[1] for e in entries],
                                                           [e[0] for e in entries]), strict=True):
                entry[2] = image
        return [self._load(i)[2] for i in indices]

    def release(self, below: int) -> None:
        for index in [i for i in self._cache if i < below]:
            del self._cache[index]


def defence_groups(chunks: list[list[Pair]]) -> dict[int, tuple[int, ...]]:
    """Rows defended together: those a batch is the first to need (as one process runs them)."""
    groups: dict[int, tuple[int, ...]] = {}
    for chunk in chunks:
        new = tuple(row for row in dict.fromkeys(p.row for p in chunk) if row not in groups)
        groups.update(dict.fromkeys(new, new))
    return groups


@dataclass
class EditWorker:
    """What a worker edits with: the pipeline and its own (defended) input reader."""

    pipe: object
    reader: RowImages
    editor: str
    params: EditParams
    input_kind: str
    origin: str


@dataclass
class EditWorkerFactory:
    """Builds an :class:`EditWorker` (picklable: Ray workers build their own)."""

    images: InputSet
    model: ModelRef
    editor: str
    params: EditParams
    defence: Defence | None
    defence_model: ModelRef | None
    device: torch.device
    dtype: torch.dtype
    threads: int | None
    input_kind: str

    def __call__(self) -> EditWorker:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        pipe = load_pipeline(self.model, self.editor, self.device, self.dtype)
        defender = None
        if self.defence is not None:
            kind = self.defence.model_kind
            defender = Defender(self.defence, None if kind is None else load_pipeline(
                self.defence_model, kind, self.device, self.dtype))
        return EditWorker(pipe, RowImages(self.images, defender), self.editor, self.params,
                          self.input_kind, self.images.origin)


def edit_batch(worker: EditWorker, batch: tuple) -> list[dict]:
    """The output rows of one batch ``(begin, end, pairs, defence groups, mask PNGs)``."""
    _, _, chunk, groups, masks = batch
    pixels = worker.reader.get([p.row for p in chunk], groups)
    batch_masks = None
    if worker.editor == "inpaint":
        batch_masks = [repaint_mask(mask, worker.params.invert_mask) for mask in masks]
    edited = run_editor(worker.pipe, worker.editor, worker.params, pixels,
                        [p.prompt for p in chunk], batch_masks)
    worker.reader.release(chunk[-1].row)
    return [_output_row(pair, image, worker.input_kind, worker.origin)
            for pair, image in zip(chunk, edited, strict=True)]


# -- running ----------------------------------------------------------------------------------
def run_editor(pipe, editor: str, params: EditParams, images: list[Image.Image],
               prompts: list[str], masks: list[Image.Image] | None = None) -> list[Image.Image]:
    """One batched pipeline call; sample i draws from ``Generator().manual_seed(seed)``."""
    gens = [torch.Generator("cpu").manual_seed(params.seed) for _ in images]
    kwargs = dict(prompt=list(prompts), image=list(images),
                  num_inference_steps=params.num_inference_steps,
                  guidance_scale=params.guidance_scale, eta=params.eta, generator=gens,
                  output_type="pil")
    if editor == "img2img":
        kwargs.update(strength=params.strength)
    elif editor == "inpaint":
        width, height = images[0].size
        kwargs.update(mask_image=list(masks), strength=params.strength, height=height,
                      width=width)
    elif editor == "ip2p":
        kwargs.update(image_guidance_scale=params.image_guidance_scale)
    else:
        kwargs.update(noise_level=params.noise_level)
    return [image.convert("RGB") for image in pipe(**kwargs).images]


def repaint_mask(mask_png: bytes, invert: bool) -> Image.Image:
    """The pipeline's ``mask_image`` (white = repaint) from a dataset mask (255 = entity)."""
    mask = Image.open(io.BytesIO(mask_png)).convert("L")
    return Image.eval(mask, lambda v: 255 - v) if invert else mask


def attack_info(images: InputSet) -> dict | None:
    """The attack behind adversarial (or defended adversarial) images: method, target, model."""
    if images.origin != "adversarial":
        return None
    manifest = images.manifest if images.kind == "adversarial" else images.manifest["input"]
    attack = manifest.get("attack") or {}
    return {"method": attack.get("method"), "target": attack.get("target"),
            "eps": (attack.get("params") or {}).get("eps"),
            "model": manifest.get("model") or manifest.get("attack_model")}


def model_key(record: dict | None) -> tuple | None:
    return None if record is None else (record.get("id"), record.get("revision"))


def edit_dataset(
    dataset_dir: Path,
    out_dir: Path,
    params: EditParams,
    model: ModelRef,
    editor: str | None = None,
    images_dir: Path | None = None,
    defence: Defence | None = None,
    defence_model: ModelRef | None = None,
    options: EditOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Edit ``images_dir`` (default: the dataset's own images) into ``out_dir``.

    ``dataset_dir`` is the clean dataset the images came from (prompts, masks). ``defence`` is
    applied to every input image first (``defence_model``: the pipeline it runs, if any).
    Returns the output manifest; resumes an interrupted run with the same settings.
    """
    options = options or EditOptions()
    options.check()
    dataset, images, editor = _open_inputs(dataset_dir, images_dir, out_dir, editor, defence,
                                           defence_model)
    pairs = plan_pairs(images, dataset_prompts(dataset), options)
    device = run_device(options.engine, options.device)
    job = _EditJob(dataset, images, editor, params, model, defence, defence_model, options,
                   device)
    with connect(options.engine), ShardedWriter(
            Path(out_dir), kind=KIND, features=FEATURES, config=job.config(),
            shard_size=options.shard_size, overwrite=options.overwrite) as writer:
        if writer.complete_manifest is not None:
            return writer.complete_manifest
        t0 = time.perf_counter()
        done = job.run(writer, pairs, progress)
        seconds = time.perf_counter() - t0
        return writer.finish(len(pairs), job.manifest_extra(seconds, done))


def _open_inputs(dataset_dir: Path, images_dir: Path | None, out_dir: Path, editor: str | None,
                 defence: Defence | None, defence_model: ModelRef | None):
    """The dataset, the images to edit and the editor, checked to fit together."""
    dataset = open_input(Path(dataset_dir), "dataset", near=Path(out_dir))
    images = open_input(Path(images_dir), "images", near=Path(out_dir)) if images_dir else dataset
    check_same_dataset(images, dataset)
    if images.task != dataset.task:
        raise LdmdataError(f"{images.path} is a {images.task} set but {dataset.path} is "
                           f"{dataset.task}")
    editor = editor or default_editor(dataset.task)
    check_editor(editor, dataset.task)
    if defence is not None and images.kind == "defended":
        raise LdmdataError(f"{images.path} is already defended; edit it without a defence")
    if defence is not None and defence.model_kind is not None and defence_model is None:
        raise LdmdataError(f"the {defence.method} defence needs a {defence.model_kind} model")
    images.check_sizes(defence)
    return dataset, images, editor


class _EditJob:
    """One edit run: its identity (config), its batches, and what its manifest records."""

    def __init__(self, dataset, images, editor, params, model, defence, defence_model, options,
                 device):
        self.dataset, self.images, self.editor, self.params = dataset, images, editor, params
        self.model, self.defence, self.defence_model = model, defence, defence_model
        self.options, self.device = options, device
        self.dtype = pick_dtype(options.dtype, device)
        self.model_record = describe_model(model)
        self.defence_record = (None if defence is None or defence.model_kind is None
                               else describe_model(defence_model))
        self.input_kind = "defended" if defence is not None else images.kind

    def config(self) -> dict:
        """What decides the output's content: a resumed run must match it exactly."""
        o = self.options
        return {
            "task": self.dataset.task,
            "editor": self.editor,
            "params": self.params.used(self.editor),
            "model": self.model_record,
            "inputs": {"dataset": self.dataset.record["dvc_hash"],
                       "images": self.images.record["dvc_hash"]},
            "defence": None if self.defence is None else self.defence.as_dict(),
            "defence_model": self.defence_record,
            "prompts": o.prompts,
            "prompt_index": o.prompt_index,
            "limit": o.limit,
            "batch_size": o.batch_size,
            "dtype": o.dtype,
            "device_type": self.device.type,
            "threads": o.threads,  # CPU float reductions depend on it
            "code": source_fingerprint(CODE),
            **o.extra_config,
        }

    def run(self, writer: ShardedWriter, pairs: list[Pair],
            progress: Callable[[int, int], None] | None) -> int:
        """Edit the pairs from the writer's cursor on, in order; the number edited."""
        o, engine = self.options, self.options.engine
        masks = (dataset_masks(self.dataset, {p.sample_id for p in pairs})
                 if self.editor == "inpaint" else {})
        make_worker = EditWorkerFactory(self.images, self.model, self.editor, self.params,
                                        self.defence, self.defence_model, self.device,
                                        self.dtype, o.threads, self.input_kind)
        worker = make_worker() if engine.name == "local" else None
        size_of = _sizes(self.images, pairs)
        spans = list(batches(len(pairs), writer.cursor, o.batch_size, o.shard_size, size_of))
        groups = defence_groups([pairs[begin:end] for begin, end in spans])
        todo = [(begin, end, pairs[begin:end], {p.row: groups[p.row] for p in pairs[begin:end]},
                 [masks[p.sample_id] for p in pairs[begin:end]] if masks else None)
                for begin, end in spans]
        results = run_batches(engine, todo, (lambda: worker) if worker is not None
                              else make_worker, edit_batch)
        done = 0
        for (begin, end, chunk, _, _), records in zip(todo, results, strict=True):
            for i, record in enumerate(records):
                if writer.add(record, cursor=begin + i + 1) and writer.cursor != end:
                    raise RuntimeError("a shard closed inside a batch")
            done += len(chunk)
            if progress is not None:
                progress(end, len(pairs))
        return done

    def manifest_extra(self, seconds: float, done: int) -> dict:
        """The manifest's record of the run: inputs, attack, transfer flags, runtime, timing."""
        o, images = self.options, self.images
        attack = attack_info(images)
        transfer_model = None if attack is None else model_key(attack["model"]) != model_key(
            self.model_record)
        transfer_prompt = None if attack is None else o.prompt_index != "same"
        return {
            "task": self.dataset.task,
            "editor": self.editor,
            "params": self.params.used(self.editor),
            "input_kind": self.input_kind,
            "origin": images.origin,
            "inputs": {"dataset": self.dataset.record,
                       "images": {**images.record, "role": images.kind}},
            "attack": attack,
            "defence": (self.defence.as_dict() if self.defence is not None
                        else images.defence),
            "transfer": {"model": transfer_model, "prompt": transfer_prompt},
            "model": self.model_record,
            "defence_model": self.defence_record,
            "selection": {"prompts": o.prompts, "prompt_index": o.prompt_index,
                          "limit": o.limit},
            "runtime": {
                "device": str(self.device),
                "dtype": o.dtype,
                "batch_size": o.batch_size,
                **o.engine.record(),
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
            },
            "code": code_version(),
            "timing": {"seconds_this_run": seconds,
                       "seconds_per_edit": seconds / done if done else None},
        }


def _sizes(images: InputSet, pairs: list[Pair]) -> Callable[[int], tuple[int, int]]:
    """``size_of(pair index)``: the input image's size (read once per row)."""
    sizer = RowImages(images, None)
    sizes: dict[int, tuple[int, int]] = {}

    def size_of(i: int) -> tuple[int, int]:
        if i not in sizes:
            sizes[i] = sizer.size(pairs[i].row)
            sizer.release(pairs[i].row)
        return sizes[i]

    return size_of


def _output_row(pair: Pair, image: Image.Image, input_kind: str, origin: str) -> dict:
    return {
        "id": pair.id,
        "sample_id": pair.sample_id,
        "source_id": pair.source_id,
        "prompt_index": pair.prompt_index,
        "attack_prompt_index": pair.attack_prompt_index,
        "prompt": pair.prompt,
        "input_id": pair.input_id,
        "input_kind": input_kind,
        "origin": origin,
        "image": encode_png(image),
    }


def edit(
    dataset_dir: Path,
    out_dir: Path,
    *,
    images_dir: Path | None = None,
    editor: str | None = None,
    preset: str | None = None,
    overrides: dict | None = None,
    defence: str | dict | Defence | None = None,
    profile: str = "tiny",
    models_params: dict | None = None,
    tiny_dir: Path | None = None,
    model: str | None = None,
    revision: str | None = None,
    options: EditOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """What the CLI and the DVC stage run: check everything, pick the models, edit."""
    options = options or EditOptions()
    options.check()
    dataset = open_input(Path(dataset_dir), "dataset")
    editor = editor or default_editor(dataset.task)
    check_editor(editor, dataset.task)
    params = resolve_edit_params(editor, preset, overrides)
    chosen = defence if isinstance(defence, Defence) or defence is None else parse_defence(defence)
    ref = editor_ref(editor, profile, models_params or {}, tiny_dir, model, revision)
    defence_model = None
    if chosen is not None and chosen.model_kind is not None:
        defence_model = editor_ref(chosen.model_kind, profile, models_params or {}, tiny_dir)
    return edit_dataset(dataset_dir, out_dir, params, ref, editor, images_dir, chosen,
                        defence_model, options, progress)
