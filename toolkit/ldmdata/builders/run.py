"""The build driver: source -> decode -> task builder (batched models) -> sharded writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from pathlib import Path

import torch

from ldmdata import provenance
from ldmdata.builders.img2img import Img2ImgBuilder
from ldmdata.builders.inpaint import InpaintBuilder
from ldmdata.builders.selection import select_study
from ldmdata.builders.settings import build_settings, resolve_auto
from ldmdata.builders.sr import SrBuilder
from ldmdata.builders.steps import Models, item_seed, roles_needed
from ldmdata.dataset import ShardedWriter
from ldmdata.dataset.png import encode_png
from ldmdata.engine import Engine, connect, run_batches
from ldmdata.errors import InputRejected, LdmdataError
from ldmdata.models.loading import check_loadable
from ldmdata.models.refs import ModelRef, default_tiny_dir, resolve
from ldmdata.models.tiny import ensure_tiny_models, tiny_fingerprint
from ldmdata.sources import open_source
from ldmdata.sources.decode import load_rgb

BUILDERS = {"inpaint": InpaintBuilder, "img2img": Img2ImgBuilder, "sr": SrBuilder}

# Settings that change speed, never content; left out of the resume/up-to-date check.
RUNTIME_ONLY = ("workers", "engine", "ray_address", "ray_workers", "gpus_per_worker")

Progress = Callable[[int, int], None]  # (rows written, inputs rejected)


def prepare_models(
    roles: list[str], profile: str, models_params: dict, tiny_dir: Path | None
) -> tuple[dict[str, ModelRef], list[dict]]:
    """Resolve and check every model before any output exists; returns refs and their records
    for the manifest (the tiny set records the sha256 of its files as its revision)."""
    refs = {role: resolve(role, profile, models_params, tiny_dir) for role in roles}
    if profile == "tiny":
        folder = ensure_tiny_models(tiny_dir or default_tiny_dir(), roles)
        records = [
            {"role": r, "id": f"ldmdata-tiny/{r}",
             "revision": f"sha256:{tiny_fingerprint(folder, r)}"}
            for r in roles
        ]
    else:
        for ref in refs.values():
            check_loadable(ref)
        records = [ref.as_dict() for ref in refs.values()]
    return refs, records


def build_dataset(
    task: str,
    out_dir: Path,
    settings: dict,
    *,
    source: str = "synthetic",
    profile: str = "tiny",
    models_params: dict | None = None,
    tiny_dir: Path | None = None,
    overwrite: bool = False,
    on_progress: Progress | None = None,
) -> dict:
    """Build (or resume, or find up to date) the ``task`` dataset in ``out_dir``.

    Everything the user chose is checked before ``out_dir`` is touched. Returns the manifest;
    its ``exhausted`` key is true when a finite source ran out before ``n`` rows.
    """
    out_dir, tiny_dir = Path(out_dir), (Path(tiny_dir) if tiny_dir else None)
    settings = build_settings(task, settings)
    engine = Engine(settings["engine"], settings["ray_address"], settings["ray_workers"],
                    settings["gpus_per_worker"])
    engine.check()
    src = open_source(source, seed=settings["seed"], task=task)
    settings = resolve_auto(settings, src.curated, src.size())
    if settings["selection"] == "study" and src.size() is None:
        raise LdmdataError(f"selection: study ranks a whole source; {src.spec} has no end")
    roles = roles_needed(task, settings)
    refs, model_records = prepare_models(roles, profile, models_params or {}, tiny_dir)
    config = {
        "task": task,
        "params": {k: v for k, v in settings.items() if k not in RUNTIME_ONLY},
        "source": src.spec,
        "models": model_records,
        "ldmdata": provenance.code_version()["ldmdata"],
    }
    torch.set_num_threads(settings["threads"])
    models = Models(refs, settings)
    builder = BUILDERS[task](settings, models)
    n, seed = settings["n"], settings["seed"]
    with connect(engine), ShardedWriter(
        out_dir, kind=task, features=builder.features, config=config,
        shard_size=settings["shard_size"], overwrite=overwrite,
    ) as writer:
        if writer.complete_manifest is not None:
            return writer.complete_manifest
        if settings["selection"] == "study":
            src = select_study(src, settings["selection_k"] or n, settings, models)
        with ThreadPoolExecutor(settings["workers"]) as pool:
            if engine.name == "local":
                outcomes = partial(_outcomes, src, builder=builder, pool=pool,
                                   settings=settings)
            else:
                outcomes = partial(_engine_outcomes, engine=engine, settings=settings,
                                   make_worker=BuildWorkerFactory(task, settings, refs, src))
            cursor, exhausted = _fill(writer, outcomes, builder.task, settings, on_progress)
        if writer.n_written == 0:
            raise LdmdataError(
                f"no usable inputs in {source}: {writer.n_rejected} rejected "
                f"({_top_reasons(writer)}), 0 accepted"
            )
        return writer.finish(cursor, {
            "task": task,
            "n_requested": n,
            "exhausted": exhausted,
            "seed": seed,
            "params": config["params"],
            "models": models.records(model_records),
            "source": src.describe(),
            "code_version": provenance.code_version(),
        })  # no engine here: the same build is the same bytes, so DVC sees the same outs


def _decode(item, settings: dict):
    try:
        return load_rgb(item, max_pixels=settings["max_pixels"], min_side=settings["min_side"])
    except InputRejected as rejected:
        return rejected


def _top_reasons(writer) -> str:
    counts: dict[str, int] = {}
    for reason in writer.reject_reasons():
        counts[reason] = counts.get(reason, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return "; ".join(f"{reason} x{count}" for reason, count in top)


def _encode(row: dict, columns: tuple[str, ...]) -> dict:
    return {k: (encode_png(v) if k in columns else v) for k, v in row.items()}


def _process(builder, batch: list, decoded: list, settings: dict, finish) -> list:
    """Outcomes of one decoded input batch: a reject, or ``finish(row)`` of the built row."""
    outcomes = list(decoded)
    live = [i for i, d in enumerate(outcomes) if not isinstance(d, InputRejected)]
    if live:
        processed = builder.process(
            [batch[i] for i in live], [outcomes[i] for i in live],
            [item_seed(settings["seed"], batch[i].index) for i in live],
        )
        for i, row in zip(live, processed, strict=True):
            outcomes[i] = row if isinstance(row, InputRejected) else finish(row)
    return outcomes


def _outcomes(src, start: int, builder, pool, settings: dict) -> Iterator[list[tuple]]:
    """Batches of (item, outcome) from input ``start`` on; an outcome is a reject or a future
    of the encoded row. Decoding runs a batch ahead of the models and PNG encoding runs behind
    them, both in ``pool``, so the models never wait on either."""
    items = src.iterate(start)

    def decode_next() -> tuple[list, list[Future]]:
        batch = list(islice(items, settings["batch_size"]))
        return batch, [pool.submit(_decode, item, settings) for item in batch]

    batch, decoding = decode_next()
    while batch:
        upcoming = decode_next()
        outcomes = _process(builder, batch, [future.result() for future in decoding], settings,
                            lambda row: pool.submit(_encode, row, builder.image_columns))
        yield list(zip(batch, outcomes, strict=True))
        batch, decoding = upcoming


@dataclass(frozen=True)
class Taken:
    """What the writer needs of an input item built elsewhere."""

    index: int
    source_id: str


@dataclass
class BuildWorkerFactory:
    """Builds a Ray worker: ``(source, builder, settings)`` with its own lazily loaded models."""

    task: str
    settings: dict
    refs: dict[str, ModelRef]
    source: object  # the opened (and selected) source; it travels to the workers

    def __call__(self) -> tuple:
        torch.set_num_threads(self.settings["threads"])
        builder = BUILDERS[self.task](self.settings, Models(self.refs, self.settings))
        return self.source, builder, self.settings


def build_batch(worker: tuple, span: tuple[int, int]) -> list[tuple]:
    """(item, outcome) of inputs ``start:start + count``; an outcome is a reject or a row."""
    src, builder, settings = worker
    start, count = span
    batch = list(islice(src.iterate(start), count))
    outcomes = _process(builder, batch, [_decode(item, settings) for item in batch], settings,
                        lambda row: _encode(row, builder.image_columns))
    return [(Taken(item.index, item.source_id), outcome)
            for item, outcome in zip(batch, outcomes, strict=True)]


def _engine_outcomes(start: int, engine: Engine, settings: dict,
                     make_worker: BuildWorkerFactory) -> Iterator[list[tuple]]:
    """:func:`_outcomes` on the engine: the same input batches, in rounds of about what the
    open shard still needs (the caller stops at a shard's end and starts again there)."""
    size = settings["batch_size"]
    while True:
        rounds = -(-min(settings["shard_size"], settings["n"]) // size) + engine.workers
        todo = [(start + k * size, size) for k in range(rounds)]
        for outcomes in run_batches(engine, todo, make_worker, build_batch):
            if not outcomes:
                return
            yield outcomes
        start += rounds * size


def _fill(writer, outcomes_from, task, settings, on_progress) -> tuple[int, bool]:
    """Feed the writer until ``n`` rows; returns (input cursor, source exhausted).

    Each batch is written while the next one is computed. When a shard is committed, the
    work past it is dropped and the stream restarts at the writer's cursor, exactly where a
    resumed build would start, so batch boundaries (and results) never depend on a kill.
    """
    n = settings["n"]
    cursor = writer.cursor
    while True:
        written, restart = None, False
        for outcomes in chain(outcomes_from(writer.cursor), [None]):
            for item, outcome in written or []:
                cursor = item.index + 1
                if isinstance(outcome, InputRejected):
                    writer.reject(item.index, item.source_id, outcome.reason)
                    if writer.n_rejected >= settings["max_rejects"]:
                        raise LdmdataError(
                            f"{writer.n_rejected} inputs rejected (max_rejects) with "
                            f"{writer.n_written} accepted: {_top_reasons(writer)}"
                        )
                    continue
                built = outcome.result() if isinstance(outcome, Future) else outcome
                row = {"id": f"{task}-{writer.n_written:06d}", **built}
                restart = writer.add(row, cursor)
                if writer.n_written >= n:
                    return cursor, False
                if restart:
                    break
            if on_progress and written:
                on_progress(writer.n_written, writer.n_rejected)
            if restart:
                break
            written = outcomes
        if not restart:
            return cursor, True
