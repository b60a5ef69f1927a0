"""The DVC ``evaluate`` stage: every edited set of every task against its clean edits.

Reads ``EDITS/<task>/plan.json`` (written by the edit stage) and writes
``METRICS/<task>/<run>/<input>.json`` (summaries, DVC metrics) and
``TABLES/<task>/<run>/<input>.parquet`` (per-sample values).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from ldmdata.dataset.inputs import EDIT_PLAN
from ldmdata.errors import LdmdataError
from ldmdata.metrics.evaluation import evaluate, evaluate_settings
from ldmdata.models.clip import ClipScorer
from ldmdata.models.editors import pick_device, quiet_loading
from ldmdata.models.refs import resolve
from ldmdata.models.tiny import ensure_tiny_models


def evaluate_from_params(
    edits_root: Path,
    datasets_root: Path,
    metrics_dir: Path,
    tables_dir: Path,
    params: dict,
    tiny_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Evaluate everything the edit plans list; returns the summaries."""
    settings = evaluate_settings(params.get("evaluate") or {})
    models = dict(params.get("models") or {})
    profile = models.pop("profile", "tiny")
    plans = sorted(Path(edits_root).glob(f"*/{EDIT_PLAN}"))
    if not plans:
        raise LdmdataError(f"no edit plans under {edits_root} (run the edit stage first)")
    if settings["threads"] is not None:
        torch.set_num_threads(settings["threads"])
    clip = resolve("clip", profile, models, tiny_dir)
    if profile == "tiny":
        ensure_tiny_models(Path(clip.id).parent, ["clip"])
    with quiet_loading():
        scorer = ClipScorer(clip, device=str(pick_device(settings["device"])))
    summaries = []
    for plan_file in plans:
        plan = json.loads(plan_file.read_text())
        task, root = plan["task"], plan_file.parent
        for run, entry in plan["runs"].items():
            for name, folder in entry["sets"].items():
                if progress is not None:
                    progress(f"{task}/{run}/{name}")
                summaries.append(evaluate(
                    root / folder, root / entry["reference"], Path(datasets_root) / task,
                    Path(metrics_dir) / task / run / f"{name}.json",
                    Path(tables_dir) / task / run / f"{name}.parquet",
                    clip, settings, labels={"run": run}, scorer=scorer,
                ))
    return summaries
