"""The study's tables, built from evaluation summaries (and their per-sample tables).

- attack target x metric, per task (white-box: the edit model is the attacked one, same prompt);
- model transfer: attack (target @ attack model) x edit model, per task;
- prompt transfer: attacked prompt index x edit prompt index, per task and attack;
- defence x metric, per task and attack.

Every row names the evaluation it comes from (``E1``, ``E2`` ...); the report's provenance
section lists each evaluation's input hashes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from ldmdata.errors import LdmdataError
from ldmdata.metrics.names import HIGHER_IS_BETTER, METRICS
from ldmdata.provenance import project_root

METRIC_NAMES = {"psnr": "PSNR", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "clip_score": "CLIP",
                "fid": "FID", "is": "IS"}


@dataclass
class Evaluation:
    """One evaluation summary file."""

    ref: str
    path: Path
    labels: dict
    metrics: dict
    provenance: dict
    table: Path | None
    file_record: dict = field(default_factory=dict)

    def value(self, metric: str) -> float | None:
        """The headline number (``mean``) of ``metric``; pooled or set-wide as it says."""
        return (self.metrics.get(metric) or {}).get("mean")

    @property
    def protocol(self) -> str:
        """The evaluation protocol the numbers come from (``ldmdata`` or ``study``)."""
        return self.labels.get("protocol", "ldmdata")

    def interval(self, metric: str) -> tuple[float | None, float | None]:
        entry = self.metrics.get(metric) or {}
        return entry.get("ci_low"), entry.get("ci_high")

    @property
    def white_box(self) -> bool:
        return (self.labels.get("origin") == "adversarial" and not self.labels.get("defence")
                and not self.labels.get("model_transfer")
                and not self.labels.get("prompt_transfer"))


@dataclass
class Table:
    """A titled table: ``header`` and ``rows`` of display strings, plus plot-ready values."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    plot: list[dict] = field(default_factory=list)


def load_evaluations(metrics_dir: Path) -> list[Evaluation]:
    """Every evaluation summary (``*.json`` with labels and metrics) under ``metrics_dir``."""
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise LdmdataError(f"{metrics_dir}: no such folder of metrics")
    found = []
    for path in sorted(metrics_dir.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise LdmdataError(f"{path} is not valid JSON") from None
        if not {"labels", "metrics", "provenance"} <= set(data):
            continue
        table = data.get("table")
        found.append(Evaluation(f"E{len(found) + 1}", path, data["labels"], data["metrics"],
                                data["provenance"], _resolve(table, path) if table else None))
    if not found:
        raise LdmdataError(f"no evaluation summaries under {metrics_dir} (run ldmdata evaluate)")
    return found


def _resolve(recorded: str, near: Path) -> Path:
    root = project_root(near.parent)
    path = Path(recorded)
    if not path.is_absolute() and root is not None:
        path = root / path
    return path


def cell(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "n/a"
    text = _fmt(value)
    if low is not None and high is not None:
        text += f" [{_fmt(low)}, {_fmt(high)}]"
    return text


def _fmt(value: float) -> str:
    if value != value or abs(value) == float("inf"):
        return str(value)
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def metric_header(metric: str) -> str:
    """``SSIM ↑``; a comparison with the sr dataset's HR images reads ``SSIM vs HR ↑``."""
    base = metric.removesuffix("_hr")
    name = METRIC_NAMES[base] + (" vs HR" if base != metric else "")
    return f"{name} {'↑' if HIGHER_IS_BETTER[base] else '↓'}"


def hr_columns(evals: list[Evaluation], metrics: list[str]) -> list[str]:
    """The HR comparisons the evaluations hold (sr: each upscale against the HR image)."""
    return [f"{m}_hr" for m in metrics if any(f"{m}_hr" in e.metrics for e in evals)]


def attack_tables(evals: list[Evaluation], metrics: list[str]) -> list[Table]:
    """Attack target x metric, per task, with the clean edits' own CLIP/FID/IS on top."""
    tables = []
    for task, protocol in sorted({(e.labels["task"], e.protocol) for e in evals if e.white_box}):
        chosen = [e for e in evals if e.white_box and e.labels["task"] == task
                  and e.protocol == protocol]
        columns = metrics + hr_columns(chosen, metrics)
        header = ["attack", "model"] + [metric_header(m) for m in columns] + ["eval"]
        first = chosen[0]
        rows = [["none (clean edits)", first.labels.get("edit_model") or ""]
                + [cell(first.value(f"{m}_reference"), *first.interval(f"{m}_reference"))
                   if m in ("clip_score", "fid", "is") or m.endswith("_hr") else "-"
                   for m in columns]
                + [f"ref of {first.ref}"]]
        plot = []
        for e in sorted(chosen, key=target_label):
            rows.append([target_label(e), e.labels.get("attack_model") or ""]
                        + [cell(e.value(m), *e.interval(m)) for m in columns] + [e.ref])
            plot.append({"name": f"{task}/{target_label(e)}", "task": task,
                         "target": target_label(e),
                         **{m: e.value(m) for m in metrics}})
        tables.append(Table(f"{task}: attack target x metric ({protocol} protocol)", header,
                            rows, "mean [95% cluster-bootstrap interval over source images]; "
                            "the first row scores the edits of the clean images, the reference "
                            f"edits of {first.ref} (CLIP vs prompt, FID vs sources, IS"
                            + ("; sr: each upscale vs the HR image" if columns != metrics
                               else "") + ").", plot))
    return tables


def model_transfer_tables(evals: list[Evaluation], metric: str) -> list[Table]:
    """Rows: attack target @ attack model; columns: edit model; cells: ``metric``."""
    tables = []
    for task in sorted({e.labels["task"] for e in evals}):
        chosen = [e for e in evals if e.labels["task"] == task
                  and e.labels.get("origin") == "adversarial" and not e.labels.get("defence")
                  and not e.labels.get("prompt_transfer")]
        edit_models = sorted({e.labels.get("edit_model") or "" for e in chosen})
        if not any(e.labels.get("model_transfer") for e in chosen):
            continue
        grid: dict[str, dict[str, Evaluation]] = {}
        for e in chosen:
            row = f"{e.labels.get('attack_target')} @ {e.labels.get('attack_model')}"
            grid.setdefault(row, {})[e.labels.get("edit_model") or ""] = e
        rows = [[name] + [cell(grid[name][m].value(metric)) + f" ({grid[name][m].ref})"
                          if m in grid[name] else "-" for m in edit_models]
                for name in sorted(grid)]
        tables.append(Table(f"{task}: model transfer ({METRIC_NAMES[metric]}, edit model in "
                            "columns)", ["attack @ attack model"] + edit_models, rows,
                            "the diagonal (edit model = attack model) is the white-box case."))
    return tables


def prompt_transfer_tables(evals: list[Evaluation], metric: str) -> list[Table]:
    """Per task and attack: attacked prompt (rows) x edit prompt (columns), from the tables."""
    tables = []
    groups: dict[tuple, list[Evaluation]] = {}
    for e in evals:
        if (e.labels.get("origin") == "adversarial" and not e.labels.get("defence")
                and not e.labels.get("model_transfer") and e.table is not None):
            groups.setdefault((e.labels["task"], target_label(e)), []).append(e)
    for (task, target), chosen in sorted(groups.items()):
        if not any(e.labels.get("prompt_transfer") for e in chosen):
            continue
        sums: dict[tuple[int, int], list[float]] = {}
        refs = []
        for e in chosen:
            if not e.table.is_file():
                raise LdmdataError(f"{e.path} names a per-sample table {e.table} that is missing")
            rows = pq.read_table(e.table).to_pylist()
            if rows and metric not in rows[0]:
                continue
            refs.append(e.ref)
            for row in rows:
                key = (row["attack_prompt_index"], row["prompt_index"])
                sums.setdefault(key, []).append(row[metric])
        attacked = sorted({k[0] for k in sums})
        edited = sorted({k[1] for k in sums})
        body = [[f"attacked p{a}"] + [cell(sum(sums[(a, b)]) / len(sums[(a, b)]))
                                      if (a, b) in sums else "-" for b in edited]
                for a in attacked]
        tables.append(Table(f"{task} / {target}: prompt transfer ({METRIC_NAMES[metric]})",
                            ["attacked \\ edited"] + [f"p{b}" for b in edited], body,
                            f"per-sample means from {', '.join(refs)}; the diagonal is the "
                            "attacked prompt."))
    return tables


def defence_tables(evals: list[Evaluation], metrics: list[str]) -> list[Table]:
    """Per task: defence (and none) x metric for each attack that has a defended evaluation."""
    tables = []
    for task in sorted({e.labels["task"] for e in evals}):
        defended = [e for e in evals if e.labels["task"] == task and e.labels.get("defence")
                    and not e.labels.get("model_transfer") and not e.labels.get("prompt_transfer")]
        if not defended:
            continue
        rows, plot = [], []
        for target in sorted({target_label(e) for e in defended}):
            base = [e for e in evals if e.white_box and e.labels["task"] == task
                    and target_label(e) == target]
            same = [e for e in defended if target_label(e) == target]
            for e, name in [(b, "none") for b in base[:1]] + [
                    (d, d.labels["defence"]) for d in same]:
                rows.append([target, name]
                            + [cell(e.value(m), *e.interval(m)) for m in metrics] + [e.ref])
                plot.append({"name": f"{task}/{target}/{name}", "task": task, "target": target,
                             "defence": name, **{m: e.value(m) for m in metrics}})
        tables.append(Table(f"{task}: defence x metric", ["attack", "defence"]
                            + [metric_header(m) for m in metrics] + ["eval"], rows,
                            "each defence ran on the adversarial images before the edit; "
                            "the reference is the edit of the undefended clean image.", plot))
    return tables


def target_label(e: Evaluation) -> str:
    """The attack target of adversarial inputs, ``clean`` for clean ones."""
    if e.labels.get("origin") != "adversarial":
        return "clean"
    return str(e.labels.get("attack_target"))


def check_metrics(names: list[str]) -> list[str]:
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise LdmdataError(f"report metrics: unknown {', '.join(unknown)}; "
                           f"choose from {', '.join(METRICS)}")
    return names
