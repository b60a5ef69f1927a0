"""The study's report: tables, image grids and DVC plots data from evaluation summaries.

:func:`report` reads every evaluation summary under a metrics folder and writes
``report.md`` (images beside it under ``images/``), ``report.html`` (images embedded as
base64) and ``plots/*.json`` for ``dvc plots``. Each file carries a provenance block naming
every metrics file it read by DVC hash; ``ldmdata trace`` walks from there to the source data.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ldmdata.dataset.writer import write_json_atomic
from ldmdata.errors import LdmdataError
from ldmdata.metrics.names import METRICS
from ldmdata.params import merge_known
from ldmdata.provenance import file_record, provenance
from ldmdata.report.render import html_page, image_grids, markdown
from ldmdata.report.tables import (
    attack_tables,
    check_metrics,
    defence_tables,
    load_evaluations,
    model_transfer_tables,
    prompt_transfer_tables,
)

DEFAULTS: dict = {
    "title": "ldmdata robustness report",
    "metrics": list(METRICS),
    "matrix_metric": "ssim",   # the metric of the model- and prompt-transfer matrices
    "grid_samples": 2,         # image-grid rows per attack
    "thumb_size": 128,         # longest side of a grid image, px
}
PLOTS = ("attack_targets", "defences")


def report_settings(given: dict | None) -> dict:
    s = merge_known(DEFAULTS, given or {}, "report params")
    if not isinstance(s["metrics"], list) or not s["metrics"]:
        raise LdmdataError(f"report metrics must be a list of metric names, got {s['metrics']!r}")
    check_metrics(s["metrics"])
    check_metrics([s["matrix_metric"]])
    if s["matrix_metric"] in ("fid", "is"):
        raise LdmdataError("matrix_metric must be a per-sample metric (psnr, ssim, ms_ssim, "
                           f"clip_score), got {s['matrix_metric']}")
    for key in ("grid_samples", "thumb_size"):
        value = s[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (
                0 if key == "grid_samples" else 16):
            raise LdmdataError(f"report {key} must be an integer >= "
                               f"{0 if key == 'grid_samples' else 16}, got {value!r}")
    return s


def report(metrics_dir: Path, out_dir: Path, settings: dict | None = None) -> dict:
    """Write the report for every evaluation under ``metrics_dir``; returns the written paths."""
    s = report_settings(settings)
    out_dir = Path(out_dir)
    evals = load_evaluations(Path(metrics_dir))
    metrics = s["metrics"]
    for e in evals:
        e.file_record = file_record(e.path, "metrics", near=out_dir)
    inputs = {e.file_record["path"]: e.file_record for e in evals}
    models = {}
    for e in evals:
        for role, record in e.provenance.get("models", {}).items():
            models[f"{role}:{record.get('id')}@{record.get('revision')}"] = record
    prov = provenance(inputs, models, {"report": s})
    attack = attack_tables(evals, metrics)
    defences = defence_tables(evals, metrics)
    sections = [
        ("Attack target x metric", attack),
        ("Model transfer", model_transfer_tables(evals, s["matrix_metric"])),
        ("Prompt transfer", prompt_transfer_tables(evals, s["matrix_metric"])),
        ("Defence x metric", defences),
    ]
    grids = image_grids(evals, s["grid_samples"], s["thumb_size"])

    out_dir.mkdir(parents=True, exist_ok=True)
    images = out_dir / "images"
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir()
    for rows in grids.values():
        for row in rows:
            for name, data in row.images:
                if data:
                    (images / name).write_bytes(data)
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html"}
    _write_text(paths["markdown"], markdown(s["title"], sections, grids, evals, prov))
    _write_text(paths["html"], html_page(s["title"], sections, grids, evals, prov))
    (out_dir / "plots").mkdir(exist_ok=True)
    for name, tables in (("attack_targets", attack), ("defences", defences)):
        path = out_dir / "plots" / f"{name}.json"
        write_json_atomic(path, {"data": [p for t in tables for p in t.plot],
                                 "provenance": prov})
        paths[name] = path
    return paths


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
