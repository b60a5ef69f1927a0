"""GPU figures in one run: every attack method and named target, and the builders' models.

Full mode (one CUDA GPU, nothing downloaded): builds the full-size architectures with random
weights (compute does not depend on them): SD-1.5 img2img, inpainting and InstructPix2Pix, the
x4 upscaler, and BLIP-large, OWLv2-B/16, SAM ViT-H, CLIP ViT-B/16 for the builders. It attacks
512 px images (upscaler: 128 -> 512) with every method of ``ldmdata.attacks.params.METHODS`` at
its preset (bim: every named target) through :class:`ldmdata.attacks.runner.Attacker`, in
float16 batched and at batch 1, and a representative subset in bfloat16; for bim on img2img
and inpainting it also times the study-style reference loop (``bench_attack.PipelineReference``:
the whole pipeline with gradients, decode included, every iteration, batch 1, float16).

Timing: each attack runs ``warmup + timed`` iterations (not the preset's count); timestamps
(CUDA events, no host sync) at each iteration's first objective call and at the final
evaluation give the steady per-iteration time, and the figure is
``setup + preset iterations x per-iteration``, where setup (prompt embeddings, clean features,
final evaluation, storage) is the run's wall time outside the loop. Peak memory is the run's
``torch.cuda.max_memory_allocated`` (the pipeline's weights included). Each measurement is
guarded (an error is a row); a row that runs out of GPU memory is retried once with gradient
checkpointing (column ``grad ckpt``); once ``--budget-s`` is spent the rest is marked skipped.
The table ends with pass/fail against issue 11's targets.

    PYTHONPATH=toolkit python benchmarks/gpu_suite.py --out $OUT/gpu_suite.md  # full, < 8 min
    PYTHONPATH=toolkit python benchmarks/gpu_suite.py --smoke --out /tmp/s.md  # CPU, tiny, 64 px

Besides torch and transformers it imports diffusers and, through ``ldmdata.attacks.runner``,
datasets, pyarrow, dvc-data and dvc-objects; a machine without them takes them as wheels.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

START = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import diffusers  # noqa: E402
import torch  # noqa: E402
from bench_attack import PROMPTS, PipelineReference, make_sample  # noqa: E402
from bench_models import full_size_models, run, tiny_models, workloads  # noqa: E402

from ldmdata.attacks.editors import EDITORS_FOR  # noqa: E402
from ldmdata.attacks.methods import Objective, attack_loop, derive_seed  # noqa: E402
from ldmdata.attacks.params import METHODS, resolve_params  # noqa: E402
from ldmdata.attacks.runner import Attacker  # noqa: E402
from ldmdata.attacks.targets import NAMED_TARGETS, check_target_for_editor  # noqa: E402
from ldmdata.errors import LdmdataError  # noqa: E402
from ldmdata.models.editors import PIPELINES, editor_ref, load_pipeline  # noqa: E402
from ldmdata.models.tiny import ensure_tiny_models  # noqa: E402
from ldmdata.models.tiny.diffusion import sd15_components, upscaler_components  # noqa: E402

# Sections in priority order: (editor, dtype, bim targets, other methods, batch sizes, time
# the reference loop). None = all of them; batch size 0 = the batched size (--batch-size).
# "builders" is the builders' models.
ALL = None
STUDY_TARGET = "unet.self_attn"
SUBSET_TARGETS = ("vae.encoder", STUDY_TARGET)  # the bfloat16 subset
FULL_PLAN = [
    ("img2img", "float16", ALL, ALL, (0, 1), True),
    ("img2img", "bfloat16", SUBSET_TARGETS, ALL, (0,), False),
    ("inpaint", "float16", ALL, ALL, (0, 1), True),
    ("builders", "float16", (), (), (), False),
    ("ip2p", "float16", ALL, ALL, (0, 1), False),
    ("upscale", "float16", ALL, ALL, (2, 1), False),  # its UNet runs at 128 x 128
]
SMOKE_PLAN = [
    ("img2img", "float32", ALL, ALL, (0,), False),
    ("img2img", "float32", (STUDY_TARGET,), (), (1,), True),
    ("img2img", "bfloat16", ("vae.encoder",), (), (0,), False),
    ("builders", "float32", (), (), (), False),
    ("inpaint", "float32", SUBSET_TARGETS, ALL, (0,), False),
    ("ip2p", "float32", (STUDY_TARGET,), (), (0,), False),
    ("upscale", "float32", (STUDY_TARGET,), ("photoguard-diffusion",), (0,), False),
]
# Smoke runs cut the tiny settings (not the code paths): 2 denoising steps, 1 gradient draw.
SMOKE_SETTINGS = {"num_inference_steps": 2, "grad_reps": 1}


@dataclass
class Row:
    """One measurement: an attack (or the reference loop) or a builder model."""

    editor: str
    dtype: str
    method: str
    target: str | None
    batch: int
    iterations: int | None = None  # the preset's; the figures are scaled to it
    s_per_sample: float | None = None
    s_per_iteration: float | None = None  # per sample
    setup_s: float | None = None  # per batch, outside the loop
    peak_gib: float | None = None
    ref_s_per_sample: float | None = None
    vs_ref: float | None = None  # reference s/sample over ours
    samples_per_s: float | None = None  # builders
    grad_ckpt: bool = False  # retried with gradient checkpointing after running out of memory
    status: str = "planned"

    @property
    def name(self) -> str:
        return self.method + (f":{self.target}" if self.target else "")


class Stamps:
    """Named timestamps: CUDA events on a GPU (read after one sync), else the wall clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: dict = {}

    def mark(self, name) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks[name] = event
        else:
            self.marks[name] = time.perf_counter()

    def seconds(self, first, last) -> float:
        if self.cuda:
            return self.marks[first].elapsed_time(self.marks[last]) / 1000
        return self.marks[last] - self.marks[first]


class Timed(Objective):
    """Marks the start of each iteration (its first gradient repeat) and of the evaluation."""

    def __init__(self, inner: Objective, stamps: Stamps):
        self.inner, self.stamps = inner, stamps

    def __call__(self, x_adv, iteration, rep):
        if rep == 0:
            self.stamps.mark(iteration)
        return self.inner(x_adv, iteration, rep)

    def evaluate(self, x):
        self.stamps.mark("end")
        return self.inner.evaluate(x)


class TimedAttacker(Attacker):
    """The runner's Attacker with its objective timed."""

    stamps: Stamps

    def objective(self, *args, **kwargs):
        return Timed(super().objective(*args, **kwargs), self.stamps)


def checkpointing(pipe, on: bool) -> None:
    for module in (pipe.unet, pipe.vae):
        if on:
            module.enable_gradient_checkpointing()
        else:
            module.disable_gradient_checkpointing()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def start_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def scaled(row: Row, wall: float, stamps: Stamps, warmup: int, timed: int) -> None:
    """Fill ``row``'s figures from one run of ``warmup + timed`` iterations."""
    per_iteration = stamps.seconds(warmup, "end") / timed
    setup = wall - stamps.seconds(0, "end")
    row.setup_s = setup
    row.s_per_iteration = per_iteration / row.batch
    row.s_per_sample = (setup + row.iterations * per_iteration) / row.batch


class Suite:
    """Builds the models, runs the plan, keeps the rows."""

    def __init__(self, args):
        self.args = args
        self.device = torch.device("cuda" if not args.smoke else "cpu")
        self.rows: list[Row] = []
        self.pipe = self.pipe_key = None
        self.tiny_dir = args.tiny_dir

    # -- setup ---------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - START

    def over_budget(self) -> bool:
        return self.elapsed() > self.args.budget_s

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {text}", flush=True)

    def size(self, editor: str) -> int:
        side = 64 if self.args.smoke else 512
        return side // 4 if editor == "upscale" else side

    def pipeline(self, editor: str, dtype: torch.dtype):
        """The editor's pipeline in ``dtype`` (the previous one is converted or released)."""
        if self.pipe_key == (editor, dtype):
            return self.pipe
        if self.pipe_key and self.pipe_key[0] == editor:
            self.pipe.to(dtype=dtype)
        else:
            self.release()
            if self.args.smoke:
                ref = editor_ref(editor, "tiny", {}, self.tiny_dir)
                self.pipe = load_pipeline(ref, editor, self.device, dtype)
            else:
                parts = (upscaler_components(device=self.device) if editor == "upscale"
                         else sd15_components(editor, device=self.device))
                self.pipe = PIPELINES[editor](**parts).to(self.device, dtype)
                self.pipe.set_progress_bar_config(disable=True)
                for name in ("unet", "vae", "text_encoder"):
                    getattr(self.pipe, name).eval().requires_grad_(False)
        self.pipe_key = (editor, dtype)
        return self.pipe

    def release(self) -> None:
        self.pipe = self.pipe_key = None
        self.free()

    # -- the plan ------------------------------------------------------------------------------
    def plan(self) -> list[tuple[str, str, list[Row]]]:
        """(editor, dtype, rows) per section; every row starts ``planned``."""
        sections = []
        for editor, dtype, targets, methods, batches, reference in (
                SMOKE_PLAN if self.args.smoke else FULL_PLAN):
            if editor == "builders":
                rows = [Row("builders", dtype, role, None, self.args.builder_batch)
                        for role in ("captioner", "detector", "segmenter", "clip")]
                sections.append((editor, dtype, rows))
                continue
            runs = [("bim", t) for t in NAMED_TARGETS if targets is ALL or t in targets]
            runs += [(m, None) for m in METHODS if m != "bim" and (methods is ALL or m in methods)]
            rows = []
            for method, target in runs:
                rows += [Row(editor, dtype, method, target, b or self.args.batch_size)
                         for b in batches]
                if reference and method == "bim":
                    rows.append(Row(editor, dtype, "reference", target, 1))
            sections.append((editor, dtype, rows))
        return sections

    def run(self) -> None:
        for editor, dtype_name, rows in self.plan():
            self.rows += rows
            if self.over_budget():
                for row in rows:
                    row.status = "skipped (budget)"
                continue
            dtype = getattr(torch, dtype_name)
            if editor == "builders":
                self.builders(rows, dtype)
                continue
            try:
                pipe = self.pipeline(editor, dtype)
            except Exception as err:  # noqa: BLE001 - a failed build is a row, not the end
                for row in rows:
                    row.status = f"error building the pipeline: {describe(err)}"
                self.release()
                continue
            self.say(f"{editor} {dtype_name}: {len(rows)} measurements")
            for row in rows:
                if self.over_budget():
                    row.status = "skipped (budget)"
                    continue
                self.guarded(row, lambda r=row, p=pipe: self.measure(p, r), pipe)
        self.release()

    def guarded(self, row: Row, fn, pipe=None) -> None:
        """Run one measurement; an error is the row's status. Out of GPU memory, a pipeline's
        row is tried once more with gradient checkpointing (UNet and VAE)."""
        try:
            out_of_memory = False
            try:
                fn()
            except torch.cuda.OutOfMemoryError:
                if pipe is None:
                    raise
                out_of_memory = True  # retried below, once this frame's tensors are gone
            if out_of_memory:
                self.free()
                row.grad_ckpt = True
                checkpointing(pipe, True)
                try:
                    fn()
                finally:
                    checkpointing(pipe, False)
            row.status = "ok"
        except LdmdataError as err:
            row.status = f"n/a: {err}"
        except Exception as err:  # noqa: BLE001 - one failing method must not stop the suite
            row.status = f"error: {describe(err)}"
            if self.args.smoke:
                traceback.print_exc()
        finally:
            self.free()
        self.say(format_progress(row))

    def free(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- measurements --------------------------------------------------------------------------
    def inputs(self, editor: str, n: int):
        samples = [make_sample(i, self.size(editor)) for i in range(n)]
        x = torch.cat([s[0] for s in samples]).to(self.device)
        repaint = torch.cat([s[1] for s in samples]).to(self.device)
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
        keys = [f"suite{i}" for i in range(n)]
        return x, (repaint if editor == "inpaint" else None), prompts, keys

    def params(self, row: Row, iterations: int | None = None):
        task = next(t for t, editors in EDITORS_FOR.items() if row.editor in editors)
        method = "bim" if row.method == "reference" else row.method
        if row.target is not None:
            check_target_for_editor(row.target, row.editor)
        overrides = {"editor": row.editor, "iterations": iterations}
        if self.args.smoke:
            overrides.update(SMOKE_SETTINGS)
        return resolve_params(method, task, row.target, overrides=overrides)

    def measure(self, pipe, row: Row) -> None:
        warmup, timed = self.args.warmup, self.args.timed
        row.iterations = self.params(row).iterations
        params = self.params(row, warmup + timed)
        x, repaint, prompts, keys = self.inputs(row.editor, row.batch)
        stamps = Stamps(self.device)
        start_peak(self.device)
        sync(self.device)
        begin = time.perf_counter()
        if row.method == "reference":
            attacker = Attacker(pipe, row.editor, params)
            mask = None if repaint is None else repaint.cpu()
            objective = Timed(PipelineReference(pipe, row.editor, params, attacker.module, x,
                                                prompts[0], mask), stamps)
            gens = [torch.Generator("cpu").manual_seed(derive_seed(params.seed, "start", keys[0]))]
            attack_loop(x, objective, params, gens)
            stamps.mark("end")
        else:
            attacker = TimedAttacker(pipe, row.editor, params)
            attacker.stamps = stamps
            attacker.attack(x, prompts, keys, repaint)
        sync(self.device)
        scaled(row, time.perf_counter() - begin, stamps, warmup, timed)
        row.peak_gib = peak_gib(self.device)
        if row.method == "reference":
            for ours in self.rows:
                if (ours.editor, ours.dtype, ours.method, ours.target) == (
                        row.editor, row.dtype, "bim", row.target) and ours.s_per_sample:
                    ours.ref_s_per_sample = row.s_per_sample
                    ours.vs_ref = row.s_per_sample / ours.s_per_sample

    def builders(self, rows: list[Row], dtype: torch.dtype) -> None:
        self.release()
        try:
            if self.args.smoke:
                built = {k: m.to(self.device, dtype) for k, m in tiny_models(self.tiny_dir).items()}
            else:
                with torch.device(self.device):
                    built = {k: m.to(dtype) for k, m in full_size_models().items()}
            jobs = workloads(built, self.device, dtype)
        except Exception as err:  # noqa: BLE001
            for row in rows:
                row.status = f"error building the models: {describe(err)}"
            return
        self.say(f"builders {rows[0].dtype}: {len(rows)} models, batch {rows[0].batch}")
        for row, (label, model, inputs, call) in zip(rows, jobs, strict=True):
            row.target = label
            if self.over_budget():
                row.status = "skipped (budget)"
                continue
            self.guarded(row, lambda r=row, m=model, i=inputs, c=call: self.time_builder(
                r, m.eval(), i(r.batch), c))
        del built, jobs

    def time_builder(self, row: Row, model, kwargs: dict, call: str) -> None:
        with torch.inference_mode():
            run(model, kwargs, call)  # warm-up
            sync(self.device)
            start_peak(self.device)
            begin = time.perf_counter()
            for _ in range(self.args.builder_repeats):
                run(model, kwargs, call)
            sync(self.device)
        seconds = (time.perf_counter() - begin) / self.args.builder_repeats
        row.s_per_sample = seconds / row.batch
        row.samples_per_s = row.batch / seconds
        row.peak_gib = peak_gib(self.device)


def describe(err: Exception) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:160]}"


def fmt(value, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def format_progress(row: Row) -> str:
    return (f"{row.editor} {row.dtype} {row.name} b{row.batch}: {fmt(row.s_per_sample)} s/sample, "
            f"peak {fmt(row.peak_gib, '.2f')} GiB, vs ref {fmt(row.vs_ref, '.2f')}, "
            f"{'gradient checkpointing, ' if row.grad_ckpt else ''}{row.status}")


# -- the targets (issue 11) ------------------------------------------------------------------
def checks(rows: list[Row], dtype: str, batch: int) -> list[dict]:
    """Pass/fail of the issue's targets on the measured rows (``n/a`` where none measured)."""

    def pick(cond):
        return [r for r in rows if r.editor != "builders" and r.dtype == dtype
                and not r.status.startswith("n/a") and cond(r)]

    def verdict(name, chosen, value, ok, figure):
        measured = [r for r in chosen if r.status == "ok"]
        if not chosen:
            return {"target": name, "figure": "no rows", "result": "n/a"}
        if len(measured) < len(chosen):
            bad = ", ".join(f"{r.editor} {r.name} b{r.batch}" for r in chosen
                            if r.status != "ok")
            note = f" (not measured: {bad})"
        else:
            note = ""
        if not measured:
            return {"target": name, "figure": "nothing measured" + note, "result": "FAIL"}
        values = [value(r) for r in measured]
        passed = all(ok(v) for v in values)
        return {"target": name, "figure": figure(values) + note,
                "result": "pass" if passed and not note else "FAIL"}

    references = {(r.editor, r.target) for r in rows if r.method == "reference"}
    study_unet = pick(lambda r: r.method == "bim" and r.target.startswith("unet.")
                      and r.batch == batch and (r.editor, r.target) in references)
    vae = pick(lambda r: r.method == "bim" and r.target in ("vae.encoder", "vae.quant_conv")
               and r.batch == batch)
    diffusion = pick(lambda r: r.method == "photoguard-diffusion" and r.batch == 1)
    single = pick(lambda r: r.batch == 1 and r.method != "reference")
    out = [
        verdict("study's UNet-target attack <= 2 s/sample (batched)", study_unet,
                lambda r: r.s_per_sample, lambda v: v <= 2,
                lambda v: f"worst {max(v):.3g} s/sample"),
        verdict("study's UNet-target attack >= 1.5x faster than the reference loop",
                study_unet, lambda r: r.vs_ref or 0.0, lambda v: v >= 1.5,
                lambda v: f"worst {min(v):.3g}x"),
        verdict("VAE-encoder targets <= 0.2 s/sample (batched)", vae,
                lambda r: r.s_per_sample, lambda v: v <= 0.2,
                lambda v: f"worst {max(v):.3g} s/sample"),
        verdict("PhotoGuard diffusion attack <= 3 min per image", diffusion,
                lambda r: r.s_per_sample, lambda v: v <= 180,
                lambda v: f"worst {max(v):.3g} s/image"),
        verdict("PhotoGuard diffusion attack <= 16 GiB per image", diffusion,
                lambda r: r.peak_gib or 0.0, lambda v: v <= 16,
                lambda v: f"worst {max(v):.3g} GiB"),
        verdict("every method <= 24 GiB peak per image (batch 1)", single,
                lambda r: r.peak_gib or 0.0, lambda v: v <= 24,
                lambda v: f"worst {max(v):.3g} GiB"),
    ]
    out.append(sds_check(rows, dtype))
    return out


def sds_check(rows: list[Row], dtype: str) -> dict:
    """SDS (either sign) >= 1.8x faster per iteration than AdvDM, same editor and batch."""
    name = "SDS >= 1.8x faster than AdvDM at equal iterations"
    ratios = []
    for sds in rows:
        if sds.method.startswith("sds") and sds.dtype == dtype and sds.status == "ok":
            for advdm in rows:
                if ((advdm.method, advdm.editor, advdm.dtype, advdm.batch)
                        == ("advdm", sds.editor, sds.dtype, sds.batch) and advdm.status == "ok"):
                    ratios.append(advdm.s_per_iteration / sds.s_per_iteration)
    if not ratios:
        return {"target": name, "figure": "no advdm/sds pair measured", "result": "n/a"}
    return {"target": name, "figure": f"worst {min(ratios):.3g}x",
            "result": "pass" if min(ratios) >= 1.8 else "FAIL"}


# -- output -----------------------------------------------------------------------------------
def markdown(meta: dict, rows: list[Row], verdicts: list[dict]) -> str:
    lines = [f"# GPU suite ({meta['date']}, {meta['device']})", "",
             f"torch {meta['torch']}, diffusers {meta['diffusers']}; {meta['models']}; "
             f"{meta['timing']}; wall time {meta['wall_s']:.0f} s.", "",
             "| editor | dtype | attack | batch | preset iters | s/sample | s/iter/sample "
             "| peak GiB | grad ckpt | ref s/sample | vs ref | status |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for r in rows:
        if r.editor == "builders":
            continue
        lines.append(f"| {r.editor} | {r.dtype} | {r.name} | {r.batch} | {fmt(r.iterations, '')} "
                     f"| {fmt(r.s_per_sample)} | {fmt(r.s_per_iteration)} "
                     f"| {fmt(r.peak_gib, '.2f')} | {'yes' if r.grad_ckpt else '-'} "
                     f"| {fmt(r.ref_s_per_sample)} "
                     f"| {fmt(r.vs_ref, '.2f')} | {r.status} |")
    lines += ["", "| builder model | dtype | batch | s/sample | samples/s | peak GiB | status |",
              "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        if r.editor == "builders":
            lines.append(f"| {r.target or r.method} | {r.dtype} | {r.batch} "
                         f"| {fmt(r.s_per_sample)} | {fmt(r.samples_per_s)} "
                         f"| {fmt(r.peak_gib, '.2f')} | {r.status} |")
    lines += ["", "| target | figure | result |", "| --- | --- | --- |"]
    lines += [f"| {v['target']} | {v['figure']} | {v['result']} |" for v in verdicts]
    return "\n".join(lines) + "\n"


def write(out: Path, meta: dict, rows: list[Row], verdicts: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(meta, rows, verdicts)
    out.write_text(text)
    json_path = out.with_suffix(".json") if out.suffix == ".md" else Path(f"{out}.json")
    json_path.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows],
                                     "checks": verdicts}, indent=1))
    print(text, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="Markdown table (a .json beside it holds the rows)")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU, tiny model set, 64 px, one iteration (CI)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="stop measuring after this many seconds since the start")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples per batched attack (default 4; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed iterations per attack (default 1; smoke 0)")
    parser.add_argument("--timed", type=int, default=None,
                        help="timed iterations per attack (default 2; smoke 1)")
    parser.add_argument("--builder-batch", type=int, default=None,
                        help="images per builder-model call (default 16; smoke 2)")
    parser.add_argument("--builder-repeats", type=int, default=None,
                        help="timed builder calls (default 2; smoke 1)")
    parser.add_argument("--tiny-dir", type=Path, default=None,
                        help="smoke: an already built tiny model set")
    args = parser.parse_args(argv)
    defaults = dict(batch_size=(2, 4), warmup=(0, 1), timed=(1, 2), builder_batch=(2, 16),
                    builder_repeats=(1, 2))
    for name, (smoke, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.timed < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("--timed and --batch-size must be >= 1, --warmup >= 0")
    if not args.smoke and not torch.cuda.is_available():
        parser.error("the full suite needs a CUDA GPU (use --smoke on a CPU)")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.smoke:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke and args.tiny_dir is None:
            args.tiny_dir = Path(tmp) / "tiny"
        if args.smoke:  # the builders' roles (editor_ref builds the editors')
            ensure_tiny_models(args.tiny_dir, ["captioner", "detector", "segmenter", "clip"])
        suite = Suite(args)
        device = (torch.cuda.get_device_name() if suite.device.type == "cuda"
                  else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)")
        suite.say(f"device {device}, torch {torch.__version__}, budget {args.budget_s:.0f} s")
        suite.run()
    main_dtype = "float32" if args.smoke else "float16"
    verdicts = checks(suite.rows, main_dtype, args.batch_size)
    meta = {
        "date": datetime.date.today().isoformat(), "device": device,
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "models": ("tiny model set, 64 px (upscaler 16 -> 64)" if args.smoke else
                   "full-size architectures, random weights, 512 px (upscaler 128 -> 512)"),
        "timing": (f"{args.warmup} warm-up + {args.timed} timed iterations per attack, scaled "
                   f"to the preset's iterations; batched = {args.batch_size} samples; builders: "
                   f"mean of {args.builder_repeats} calls after a warm-up"),
        "budget_s": args.budget_s, "wall_s": suite.elapsed(),
        "batch_size": args.batch_size, "warmup": args.warmup, "timed": args.timed,
    }
    write(args.out, meta, suite.rows, verdicts)


if __name__ == "__main__":
    main()
