"""Attack every (image, prompt) pair of a built dataset and write the adversarial dataset.

Pairs are taken in dataset order (each image's prompts in turn) and attacked in batches that
never straddle a shard, so an interrupted run resumes at the last committed shard and sees
exactly the batches an uninterrupted run sees: same seed, same ``content_hash``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import datasets
import diffusers
import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from ldmdata.attacks.eot import EotObjective, EotTransforms, model_kinds
from ldmdata.attacks.forward import EditBatch, EditSettings, plan_stop
from ldmdata.attacks.forward_editors import make_forward
from ldmdata.attacks.methods import (
    DiffusionAttack,
    EncoderAttack,
    FeatureDistortion,
    Objective,
    attack_loop,
    quantize,
)
from ldmdata.attacks.params import METHODS, AttackParams, resolve_params
from ldmdata.attacks.protections import PROTECTIONS, check_timesteps
from ldmdata.attacks.targets import check_target_for_editor, check_target_name, resolve_target
from ldmdata.dataset import ShardedWriter, iter_rows, read_input_manifest
from ldmdata.dataset.inputs import IMAGE_COLUMN
from ldmdata.dataset.jobs import JobOptions, batches, check_prompts
from ldmdata.dataset.png import encode_png
from ldmdata.engine import ENGINE_DEFAULTS, Engine, connect, run_batches
from ldmdata.errors import LdmdataError
from ldmdata.models.editors import (
    describe_model,
    editor_ref,
    load_pipeline,
    pick_dtype,
    run_device,
)
from ldmdata.models.refs import ModelRef
from ldmdata.params import merge_known, parse_prompts
from ldmdata.provenance import code_version, dvc_hash
from ldmdata.seeds import derive_seed

KIND = "attack"
TASKS = tuple(IMAGE_COLUMN)

FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "sample_id": datasets.Value("string"),
    "source_id": datasets.Value("string"),
    "prompt_index": datasets.Value("int32"),
    "prompt": datasets.Value("string"),
    "image": datasets.Image(),
    "linf": datasets.Value("float64"),
    "l2": datasets.Value("float64"),
    "loss": datasets.Value("float64"),
    "loss_first": datasets.Value("float64"),
    "loss_trace": datasets.Sequence(datasets.Value("float64")),
    "iterations": datasets.Value("int32"),
    "seconds": datasets.Value("float64"),  # wall-clock per pair; not part of content_hash
    "peak_memory_mb": datasets.Value("float64"),  # of the pair's batch; null off-GPU; unhashed
})
UNHASHED = ("seconds", "peak_memory_mb")


@dataclass
class RunOptions(JobOptions):
    """How to attack: which pairs (``prompts``, ``limit``) and how to run (:class:`JobOptions`)."""

    prompts: str | list[int] = "all"
    batch_size: int = 5
    gradient_checkpointing: bool = False

    def check(self) -> None:
        super().check()
        check_prompts(self.prompts)


def check_dataset(folder: Path) -> dict:
    """The input manifest; LdmdataError unless it is a finished img2img/inpaint/sr dataset."""
    manifest = read_input_manifest(folder)
    kind = manifest.get("kind")
    if kind not in TASKS:
        raise LdmdataError(
            f"{folder} is a {kind!r} dataset; attacks need an img2img, inpaint or sr dataset"
        )
    return manifest


def list_pairs(folder: Path, options: RunOptions) -> list[tuple[int, int]]:
    """``(row, prompt index)`` for every pair to attack, in dataset order."""
    pairs = []
    for row_index, row in enumerate(iter_rows(folder, columns=["id", "prompts"],
                                              decode_images=False)):
        if options.limit is not None and row_index >= options.limit:
            break
        n = len(row["prompts"])
        wanted = range(n) if options.prompts == "all" else options.prompts
        for k in wanted:
            if k >= n:
                raise LdmdataError(f"sample {row['id']} has {n} prompts; no prompt index {k}")
            pairs.append((row_index, k))
    return pairs


class RowStream:
    """Rows by index from a forward-only stream (re-opened if asked to go back)."""

    def __init__(self, folder: Path, columns: list[str]):
        self.folder, self.columns = folder, columns
        self._open()

    def _open(self) -> None:
        self._rows: Iterator[dict] = iter_rows(self.folder, columns=self.columns)
        self._index, self._row = -1, None

    def get(self, index: int) -> dict:
        if index < self._index:
            self._open()
        while self._index < index:
            self._row = next(self._rows)
            self._index += 1
        return self._row


def to_tensor(image: Image.Image) -> torch.Tensor:
    """``3 x H x W`` float in [0, 1] from an 8-bit RGB image (exactly k/255)."""
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255


# method name -> objective builder (attacker, batch, clean images, pair keys)
OBJECTIVES: dict[str, Callable[..., Objective]] = {
    "bim": lambda a, batch, x, keys: FeatureDistortion(
        a.forward, batch, a.module, a.stop, x, a.params.feature_rows),
    "photoguard-encoder": lambda a, batch, x, keys: EncoderAttack(
        a.forward, batch, a.params.target_image, a.forward.output_size(x)),
    "photoguard-diffusion": lambda a, batch, x, keys: DiffusionAttack(
        a.forward, batch, a.params, keys, a.forward.output_size(x)),
    **{name: (lambda a, batch, x, keys, cls=cls: cls(a.forward, batch, a.params, x, keys))
       for name, cls in PROTECTIONS.items()},
}


class Attacker:
    """One model + one attack configuration, applied batch by batch.

    ``task`` is the attacked editor (img2img | inpaint | upscale | ip2p).
    """

    def __init__(self, pipe, task: str, params: AttackParams, eot_pipes: dict | None = None):
        self.pipe, self.task, self.params = pipe, task, params
        self.eot = EotTransforms(params.eot, eot_pipes or {}, params.seed) if params.eot else None
        settings = EditSettings(params.num_inference_steps, params.strength,
                                params.guidance_scale, params.eta,
                                params.image_guidance_scale, params.noise_level)
        self.forward = make_forward(pipe, task, settings)
        self.module_path = self.module = self.stop = None
        if params.method == "bim":
            self.module_path, self.module = resolve_target(pipe, params.target)
            self.stop = plan_stop(self.forward, self.module, params.target)
        if params.method in PROTECTIONS:
            check_timesteps(pipe, params)

    def objective(self, batch: EditBatch, x: torch.Tensor, keys: list[str]) -> Objective:
        return OBJECTIVES[self.params.method](self, batch, x, keys)

    def attack(self, x: torch.Tensor, prompts: list[str], keys: list[str],
               repaint: torch.Tensor | None = None) -> dict:
        """Attack a batch; the quantised adversarial images (uint8 values) and losses."""
        p = self.params
        device = self.forward.device
        x = x.to(device)
        batch = EditBatch(prompts=list(prompts), seeds=[p.seed] * len(prompts),
                          repaint=None if repaint is None else repaint.to(device))
        region = None
        if p.mask_aware and repaint is not None:
            region = (batch.repaint < 0.5).to(x)
        objective = self.objective(batch, x, keys)
        if self.eot is not None:
            objective = EotObjective(objective, self.eot, p.eot_samples, keys)
        gens = [torch.Generator("cpu").manual_seed(derive_seed(p.seed, "start", k)) for k in keys]
        result = attack_loop(x, objective, p, gens, region)
        stored = quantize(x, result.x_adv, p)
        final = objective.evaluate(stored / 255)
        delta = (stored / 255 - x).flatten(1)
        return {
            "images": stored.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy(),
            "linf": delta.abs().amax(dim=1).tolist(),
            "l2": delta.norm(dim=1).tolist(),
            "loss": final.tolist(),
            "trace": result.losses.cpu().tolist(),
        }


def manifest_config(params: AttackParams, task: str, input_hash: str, model: dict,
                    options: RunOptions, device: torch.device) -> dict:
    """What decides the output's content: a resumed run must match it exactly."""
    return {
        "task": task,
        "attack": params.as_dict(),
        "input_dvc_hash": input_hash,
        "model": model,
        "prompts": options.prompts,
        "limit": options.limit,
        "batch_size": options.batch_size,
        "dtype": options.dtype,
        "device_type": device.type,
        "threads": options.threads,  # CPU float reductions depend on it
    }


def attack_dataset(
    dataset_dir: Path,
    out_dir: Path,
    params: AttackParams,
    model: ModelRef,
    options: RunOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    eot_models: dict[str, ModelRef] | None = None,
) -> dict:
    """Attack ``dataset_dir`` into ``out_dir``; returns the output manifest.

    Resumes an interrupted run with the same settings; ``progress(done, total)`` after each batch.
    ``eot_models`` maps each editing kind the EOT purifiers run to its model.
    """
    options = options or RunOptions()
    options.check()
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    in_manifest = check_dataset(dataset_dir)
    task = in_manifest["kind"]
    pairs = list_pairs(dataset_dir, options)
    engine = options.engine
    device = run_device(engine, options.device)
    dtype = pick_dtype(options.dtype, device)
    input_hash = dvc_hash(dataset_dir)
    model_record = describe_model(model)
    eot_models = {kind: (eot_models or {}).get(kind) for kind in model_kinds(params.eot)}
    missing = [kind for kind, ref in eot_models.items() if ref is None]
    if missing:
        raise LdmdataError(f"the eot defences need a {' and a '.join(missing)} model")
    eot_records = {kind: describe_model(ref) for kind, ref in eot_models.items()}
    image = IMAGE_COLUMN[task]
    columns = ["id", "source_id", image, "prompts"] + (["mask"] if task == "inpaint" else [])
    make_worker = AttackWorkerFactory(dataset_dir, columns, task, image, model, params,
                                      eot_models, device, dtype, options)
    # Ray workers build their own; the driver's copy checks the target and names its module.
    local = make_worker if engine.name == "local" else make_worker.on_cpu()
    worker = local()
    attacker = worker.attacker
    config = manifest_config(params, task, input_hash, model_record, options, device)
    config["eot_models"] = eot_records

    sizes = _image_sizes(dataset_dir, in_manifest, pairs[-1][0] + 1 if pairs else 0, image)

    with connect(engine), ShardedWriter(
            out_dir, kind=KIND, features=FEATURES, config=config,
            shard_size=options.shard_size, overwrite=options.overwrite,
            unhashed=UNHASHED) as writer:
        if writer.complete_manifest is not None:
            return writer.complete_manifest
        timing = _run_pairs(writer, pairs, sizes, options, worker, make_worker, progress)
        extra = {
            "task": task,
            "attack": _attack_record(params, attacker, eot_records, options),
            "input": {
                "path": str(dataset_dir),
                "dvc_hash": input_hash,
                "content_hash": in_manifest.get("content_hash"),
                "n": in_manifest.get("n"),
            },
            "model": model_record,
            "runtime": {
                "device": str(device),
                "dtype": options.dtype,
                "gradient_checkpointing": options.gradient_checkpointing,
                **engine.record(),
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
            },
            "code": code_version(),
            "timing": timing,
        }
        return writer.finish(len(pairs), extra)


def _run_pairs(writer: ShardedWriter, pairs: list[tuple[int, int]], sizes: list, options,
               worker, make_worker, progress) -> dict:
    """Attack the pairs from the writer's cursor on, in order; the timing summary."""
    engine = options.engine
    seconds_done = _committed(writer.out_dir, "seconds")
    peaks_done = _committed(writer.out_dir, "peak_memory_mb")
    todo = [(begin, end, pairs[begin:end]) for begin, end in batches(
        len(pairs), writer.cursor, options.batch_size, options.shard_size,
        lambda i: sizes[pairs[i][0]])]
    results = run_batches(engine, todo, (lambda: worker) if engine.name == "local"
                          else make_worker, attack_batch)
    for (begin, end, _), records in zip(todo, results, strict=True):
        for i, record in enumerate(records):
            seconds_done.append(record["seconds"])
            peaks_done.append(record["peak_memory_mb"])
            if writer.add(record, cursor=begin + i + 1) and writer.cursor != end:
                raise RuntimeError("a shard closed inside a batch")
        if progress is not None:
            progress(end, len(pairs))
    return _timing_summary(seconds_done, peaks_done)


def _attack_record(params: AttackParams, attacker: Attacker, eot_records: dict,
                   options: RunOptions) -> dict:
    """The manifest's record of the attack: method, target, hooked module, every param."""
    return {
        "method": params.method,
        "target": params.target,
        "editor": params.editor,
        "module": attacker.module_path,
        "stop_after": attacker.stop,
        "objective": "maximize" if params.maximize else "minimize",
        "params": params.as_dict(),
        "eot": list(params.as_dict()["eot"]),  # with each purifier's bpda
        "eot_models": eot_records,
        "prompts": options.prompts,
        "limit": options.limit,
        "batch_size": options.batch_size,
    }


@dataclass
class AttackWorker:
    """What a worker attacks with: its models and its own stream of the input rows."""

    attacker: Attacker
    rows: RowStream
    task: str
    image: str


@dataclass
class AttackWorkerFactory:
    """Builds an :class:`AttackWorker` (picklable: Ray workers build their own)."""

    dataset_dir: Path
    columns: list[str]
    task: str
    image: str
    model: ModelRef
    params: AttackParams
    eot_models: dict[str, ModelRef]
    device: torch.device
    dtype: torch.dtype
    options: RunOptions

    def on_cpu(self) -> AttackWorkerFactory:
        return replace(self, device=torch.device("cpu"), dtype=torch.float32)

    def __call__(self) -> AttackWorker:
        options, params, device, dtype = self.options, self.params, self.device, self.dtype
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        pipe = load_pipeline(self.model, params.editor, device, dtype)
        if options.gradient_checkpointing:
            pipe.unet.enable_gradient_checkpointing()
            pipe.vae.enable_gradient_checkpointing()
        eot_pipes = {kind: pipe if (kind, ref) == (params.editor, self.model) else
                     load_pipeline(ref, kind, device, dtype)
                     for kind, ref in self.eot_models.items()}
        attacker = Attacker(pipe, params.editor, params, eot_pipes)
        return AttackWorker(attacker, RowStream(self.dataset_dir, self.columns), self.task,
                            self.image)


def attack_batch(worker: AttackWorker, batch: tuple[int, int, list]) -> list[dict]:
    """The output rows of one batch ``(begin, end, pairs)``."""
    device = worker.attacker.forward.device
    t0 = time.perf_counter()
    _reset_peak_memory(device)
    chunk = [(worker.rows.get(r), k) for r, k in batch[2]]
    out = _attack_chunk(worker.attacker, chunk, worker.task, worker.image)
    seconds = (time.perf_counter() - t0) / len(chunk)
    out["peak_memory_mb"] = _peak_memory_mb(device)
    return [_output_row(row, k, out, i, worker.attacker.params.iterations, seconds)
            for i, (row, k) in enumerate(chunk)]


def _image_sizes(folder: Path, manifest: dict, n_rows: int,
                 image: str) -> list[tuple[int, int]]:
    """Each row's size of column ``image``, from the width/height columns or the images."""
    known = image == "image" and {"width", "height"} <= set(manifest["features"])
    columns = ["width", "height"] if known else [image]
    sizes: list[tuple[int, int]] = []
    for row in iter_rows(folder, columns=columns, decode_images=not known):
        if len(sizes) >= n_rows:
            break
        sizes.append((row["width"], row["height"]) if known else row[image].size)
    return sizes


def _attack_chunk(attacker: Attacker, chunk: list[tuple[dict, int]], task: str,
                  image: str) -> dict:
    """Attack the chunk's ``image`` column (the low-res ``lr`` of an sr dataset)."""
    x = torch.stack([to_tensor(row[image]) for row, _ in chunk])
    prompts = [row["prompts"][k] for row, k in chunk]
    keys = [f"{row['id']}:{k}" for row, k in chunk]
    repaint = None
    if task == "inpaint":
        # The dataset's mask is 255 on the entity; the model keeps it and repaints the rest.
        entity = np.stack([np.array(row["mask"].convert("L")) for row, _ in chunk])
        repaint = torch.from_numpy(entity < 128).float()[:, None]
    return attacker.attack(x, prompts, keys, repaint)


def _output_row(row: dict, k: int, out: dict, i: int, iterations: int, seconds: float) -> dict:
    trace = out["trace"][i]
    return {
        "id": f"{row['id']}-p{k}",
        "sample_id": row["id"],
        "source_id": row["source_id"],
        "prompt_index": k,
        "prompt": row["prompts"][k],
        "image": encode_png(Image.fromarray(out["images"][i], "RGB")),
        "linf": out["linf"][i],
        "l2": out["l2"][i],
        "loss": out["loss"][i],
        "loss_first": trace[0],
        "loss_trace": trace,
        "iterations": iterations,
        "seconds": seconds,
        "peak_memory_mb": out["peak_memory_mb"],
    }


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mb(device: torch.device) -> float | None:
    """Peak CUDA memory allocated since the last reset (weights included), MiB; None off-GPU.

    On a CPU there is no per-batch figure to give (the process's peak RSS only ever grows and
    holds the models and earlier batches), so the column is null rather than misleading.
    """
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _committed(out_dir: Path, column: str) -> list:
    """A column of the rows an interrupted run already committed (resume)."""
    return [v for path in sorted((out_dir / "data").glob("train-*.parquet"))
            for v in pq.read_table(path, columns=[column]).column(column).to_pylist()]


def _timing_summary(seconds: list[float], peaks: list[float | None]) -> dict:
    """Wall-clock seconds per (image, prompt) pair over the whole output, and peak memory."""
    measured = [v for v in peaks if v is not None]
    return {
        "seconds_total": sum(seconds),
        "seconds_per_sample": sum(seconds) / len(seconds) if seconds else None,
        "peak_memory_mb": max(measured) if measured else None,
        "cpu_count": os.cpu_count(),
    }


def attack(
    dataset_dir: Path,
    out_dir: Path,
    *,
    method: str = "bim",
    target: str | None = None,
    preset: str | None = None,
    overrides: dict | None = None,
    profile: str = "tiny",
    models_params: dict | None = None,
    tiny_dir: Path | None = None,
    model: str | None = None,
    revision: str | None = None,
    options: RunOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """What the CLI and the DVC stage run: check the inputs, pick the model, attack."""
    if target is not None:
        check_target_name(target)
    task = check_dataset(Path(dataset_dir))["kind"]
    params = resolve_params(method, task, target, preset, overrides)
    if target is not None:
        check_target_for_editor(target, params.editor)
    (options or RunOptions()).check()
    ref = editor_ref(params.editor, profile, models_params or {}, tiny_dir, model, revision)
    eot_models = {kind: editor_ref(kind, profile, models_params or {}, tiny_dir)
                  for kind in model_kinds(params.eot)}  # the models `ldmdata defend` uses
    return attack_dataset(dataset_dir, out_dir, params, ref, options, progress, eot_models)


BUDGET_MARK = "-eps"


def parse_attack_name(name: str) -> tuple[str, str | None, float | None]:
    """A stage's attack name: ``(method, bim target, eps)``.

    ``NAME`` is a method other than bim, or else a bim target; ``NAME-epsE`` is the same attack
    at budget ``E`` (the budget points of ``attack.budgets``, e.g. ``sds-minus-eps0.03``).
    """
    base, mark, value = name.rpartition(BUDGET_MARK)
    eps = None
    if mark and base:
        try:
            eps = float(value)
        except ValueError:
            pass  # "-eps" belongs to the name itself
        else:
            name = base
            if not eps > 0:
                raise LdmdataError(f"attack {name}{mark}{value}: the budget must be > 0")
    method, target = (name, None) if name in METHODS else ("bim", name)
    return method, target, eps


# params.yaml ``attack`` section: the stage lists (read by dvc.yaml), run options, and one
# overrides mapping per method.
STAGE_DEFAULTS: dict = {
    "targets": [],
    "photoguard": [],
    "protections": [],
    "inpaint_protections": [],
    "sr": [],
    "budgets": [],
    "preset": None,
    "prompts": "all",
    "limit": None,
    "batch_size": 5,
    "device": "auto",
    "dtype": "float32",
    "gradient_checkpointing": False,
    "shard_size": 1000,
    "threads": 1,
    **ENGINE_DEFAULTS,
    **{method: {} for method in METHODS},
}


def attack_from_params(
    dataset_dir: Path, out_dir: Path, name: str, params: dict, tiny_dir: Path | None = None
) -> dict:
    """The DVC stage: attack ``name`` (see :func:`parse_attack_name`) with params.yaml."""
    section = merge_known(STAGE_DEFAULTS, params.get("attack") or {}, "params.yaml attack")
    models = dict(params.get("models") or {})
    profile = models.pop("profile", "tiny")
    method, target, eps = parse_attack_name(name)
    overrides = {**(section[method] or {}), **({"eps": eps} if eps is not None else {})}
    prompts = section["prompts"]
    options = RunOptions(
        prompts=parse_prompts(prompts) if isinstance(prompts, str) else list(prompts),
        limit=section["limit"],
        batch_size=section["batch_size"],
        device=section["device"],
        dtype=section["dtype"],
        gradient_checkpointing=section["gradient_checkpointing"],
        shard_size=section["shard_size"],
        threads=section["threads"],
        overwrite=True,  # resume an interrupted run (persist: true), replace a stale one
        engine=Engine.from_params(section),
    )
    return attack(
        dataset_dir, out_dir, method=method, target=target, preset=section["preset"],
        overrides=overrides, profile=profile, models_params=models,
        tiny_dir=tiny_dir, options=options,
    )
