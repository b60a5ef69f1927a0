"""The study's report: tables, image grids and DVC plots data from evaluation summaries.

:func:`report` reads every evaluation summary under a metrics folder and writes
``report.md`` (images and SVG charts beside it under ``images/``), ``report.html`` (images
embedded as base64, charts as inline SVG: no script, no network) and ``plots/*.json`` for
``dvc plots``. Sections: attack target x metric, the worst case over purifiers per protection
and budget (table, protection x purifier heatmap, metric-vs-eps curve; see
:mod:`ldmdata.report.worst_case`), model and prompt transfer, defence x metric, image grids.
Each file carries a provenance block naming every metrics file it read by DVC hash;
``ldmdata trace`` walks from there to the source data.
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
from ldmdata.report.charts import Chart, dot_chart, heatmap_svg, line_svg
from ldmdata.report.render import html_page, image_grids, markdown
from ldmdata.report.tables import (
    METRIC_NAMES,
    Evaluation,
    attack_tables,
    check_metrics,
    defence_tables,
    load_evaluations,
    metric_header,
    model_transfer_tables,
    prompt_transfer_tables,
    target_label,
)
from ldmdata.report.worst_case import (
    curves,
    heatmap_plot,
    heatmaps,
    protections,
    worst_case_tables,
)

DEFAULTS: dict = {
    "title": "ldmdata robustness report",
    "metrics": list(METRICS),
    "matrix_metric": "ssim",   # of the transfer matrices, worst-case tables, heatmaps, curves
    "bootstrap": 1000,         # cluster-bootstrap resamples of the worst-case intervals
    "seed": 0,                 # of those resamples
    "grid_samples": 2,         # image-grid rows per attack
    "thumb_size": 128,         # longest side of a grid image, px
}
PLOTS = ("attack_targets", "defences", "worst_case", "purifiers")


def report_settings(given: dict | None) -> dict:
    s = merge_known(DEFAULTS, given or {}, "report params")
    if not isinstance(s["metrics"], list) or not s["metrics"]:
        raise LdmdataError(f"report metrics must be a list of metric names, got {s['metrics']!r}")
    check_metrics(s["metrics"])
    check_metrics([s["matrix_metric"]])
    if s["matrix_metric"] in ("fid", "is"):
        raise LdmdataError("matrix_metric must be a per-sample metric (psnr, ssim, ms_ssim, "
                           f"clip_score), got {s['matrix_metric']}")
    for key, least in (("grid_samples", 0), ("thumb_size", 16), ("bootstrap", 0), ("seed", 0)):
        value = s[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise LdmdataError(f"report {key} must be an integer >= {least}, got {value!r}")
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
    metric = s["matrix_metric"]
    attack = attack_tables(evals, metrics)
    defences = defence_tables(evals, metrics)
    found = protections(evals, metric, s["bootstrap"], s["seed"])
    worst = worst_case_tables(found, metric)
    maps = heatmaps(found, metric)
    sections = [
        ("Attack target x metric", attack + attack_charts(evals, metrics)),
        ("Worst case over purifiers", worst + [
            Chart(f"heatmap-{m.title.split(':')[0]}.svg", m.title, svg)
            for m in maps if (svg := heatmap_svg(m))] + [
            Chart(f"budget-{c.title.split(':')[0]}.svg", c.title, svg)
            for c in curves(found, metric) if (svg := line_svg(c))]),
        ("Model transfer", model_transfer_tables(evals, metric)),
        ("Prompt transfer", prompt_transfer_tables(evals, metric)),
        ("Defence x metric", defences + defence_charts(evals, metric)),
    ]
    grids = image_grids(evals, s["grid_samples"], s["thumb_size"])

    out_dir.mkdir(parents=True, exist_ok=True)
    images = out_dir / "images"
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir()
    for grid in grids.values():
        for row in grid.rows:
            for name, data in row.images:
                if data:
                    (images / name).write_bytes(data)
    for _, items in sections:
        for chart in (i for i in items if isinstance(i, Chart)):
            (images / chart.name).write_text(chart.svg)
    paths = {"markdown": out_dir / "report.md", "html": out_dir / "report.html"}
    _write_text(paths["markdown"], markdown(s["title"], sections, grids, evals, prov))
    _write_text(paths["html"], html_page(s["title"], sections, grids, evals, prov))
    (out_dir / "plots").mkdir(exist_ok=True)
    plots = {"attack_targets": [p for t in attack for p in t.plot],
             "defences": [p for t in defences for p in t.plot],
             "worst_case": [p for t in worst for p in t.plot],
             "purifiers": heatmap_plot(maps, metric)}
    for name, data in plots.items():
        paths[name] = out_dir / "plots" / f"{name}.json"
        write_json_atomic(paths[name], {"data": data, "provenance": prov})
    return paths


def attack_charts(evals: list[Evaluation], metrics: list[str]) -> list[Chart]:
    """Per task and metric: each white-box attack's mean and interval."""
    charts = []
    for task in sorted({e.labels["task"] for e in evals if e.white_box}):
        chosen = sorted((e for e in evals if e.white_box and e.labels["task"] == task),
                        key=target_label)
        for m in metrics:
            svg = dot_chart(f"{task}: {METRIC_NAMES[m]} per attack target", metric_header(m),
                            [(f"{target_label(e)} ({e.ref})", e.value(m), *e.interval(m))
                             for e in chosen])
            if svg:
                charts.append(Chart(f"attack-{task}-{m}.svg", f"{task}: {METRIC_NAMES[m]}", svg))
    return charts


def defence_charts(evals: list[Evaluation], metric: str) -> list[Chart]:
    """Per task: ``metric`` of each attack without and with each defence."""
    charts = []
    for table in defence_tables(evals, [metric]):
        task = table.title.split(":")[0]
        svg = dot_chart(f"{task}: {METRIC_NAMES[metric]} per attack and defence",
                        metric_header(metric),
                        [(f"{r[0]} / {r[1]} ({r[-1]})", p[metric], None, None)
                         for r, p in zip(table.rows, table.plot, strict=True)])
        if svg:
            charts.append(Chart(f"defence-{task}-{metric}.svg", table.title, svg))
    return charts


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
