"""Worst case over purifiers: per protection and budget, the metric after the strongest one.

A *protection* is an attack (method, target) of a task at a budget ``eps``. Its purifiers are
the defences evaluated on its adversarial images (white-box edit model and prompt). For each
edited sample (source image and prompt), the strongest purifier is the one whose edit the
attack disrupted least, i.e. the highest PSNR / SSIM / MS-SSIM / CLIP score; the worst case is
the mean of those per-sample maxima. Intervals are cluster bootstraps over source images
(``sample_id``): prompts of one image are not independent, so whole images are resampled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from ldmdata.errors import LdmdataError
from ldmdata.report.tables import (
    METRIC_NAMES,
    Evaluation,
    Table,
    cell,
    metric_header,
    target_label,
)

Key = tuple[str, int]  # (sample_id, prompt_index)


@dataclass
class Protection:
    """One protection x budget: the unpurified and the worst-case metric, with intervals."""

    task: str
    name: str
    eps: float | None
    base: Evaluation | None
    purified: list[Evaluation]
    unpurified: tuple[float | None, float | None, float | None]
    worst: tuple[float | None, float | None, float | None]
    strongest: Counter


def protection_name(e: Evaluation) -> str:
    """The attack target, with the method when it is not the target's own name."""
    target, method = target_label(e), e.labels.get("attack_method")
    return target if not method or method == target else f"{target} ({method})"


def eps_label(eps: float | None) -> str:
    """``8/255`` for L-inf budgets on that grid, else the number; ``n/a`` when unknown."""
    if eps is None:
        return "n/a"
    steps = eps * 255
    if 0 < eps < 1 and abs(steps - round(steps)) < 1e-6:
        return f"{round(steps)}/255"
    return f"{eps:g}"


def per_sample(e: Evaluation, metric: str) -> dict[Key, float]:
    """``{(sample_id, prompt_index): value}`` from the evaluation's per-sample table."""
    if e.table is None or not e.table.is_file():
        raise LdmdataError(f"{e.path} names a per-sample table {e.table} that is missing")
    rows = pq.read_table(e.table).to_pylist()
    if rows and metric not in rows[0]:
        raise LdmdataError(f"{e.table} has no {metric} column; evaluate with that metric")
    return {(r["sample_id"], r["prompt_index"]): r[metric] for r in rows
            if r[metric] is not None and r[metric] == r[metric]}


def cluster_bootstrap(values: dict[Key, float], n_boot: int, seed: int,
                      confidence: float) -> tuple[float | None, float | None, float | None]:
    """Mean of ``values`` and a percentile interval resampling whole source images."""
    clusters: dict[str, list[float]] = {}
    for (sample, _), value in values.items():
        clusters.setdefault(sample, []).append(value)
    if not clusters:
        return None, None, None
    sums = np.array([sum(v) for v in clusters.values()], dtype=np.float64)
    counts = np.array([len(v) for v in clusters.values()], dtype=np.float64)
    mean = float(sums.sum() / counts.sum())
    if n_boot < 1 or len(clusters) < 2:
        return mean, None, None
    pick = np.random.default_rng(seed).integers(0, len(clusters), size=(n_boot, len(clusters)))
    stats = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    low, high = np.quantile(stats, [(1 - confidence) / 2, (1 + confidence) / 2])
    return mean, float(low), float(high)


def worst_over(tables: dict[str, dict[Key, float]]) -> tuple[dict[Key, float], Counter]:
    """Per sample evaluated by every purifier: the highest value, and which purifier gave it."""
    keys = set.intersection(*(set(t) for t in tables.values()))
    worst, strongest = {}, Counter()
    for key in sorted(keys):
        name = max(sorted(tables), key=lambda n: tables[n][key])
        worst[key] = tables[name][key]
        strongest[name] += 1
    return worst, strongest


def protections(evals: list[Evaluation], metric: str, n_boot: int, seed: int,
                confidence: float = 0.95) -> list[Protection]:
    """Every protection x budget that has white-box or purified evaluations, sorted."""
    groups: dict[tuple, dict[str, list[Evaluation]]] = {}
    for e in evals:
        labels = e.labels
        if (labels.get("origin") != "adversarial" or labels.get("model_transfer")
                or labels.get("prompt_transfer")):
            continue
        key = (labels["task"], protection_name(e), labels.get("attack_eps"))
        side = "purified" if labels.get("defence") else "base"
        groups.setdefault(key, {"base": [], "purified": []})[side].append(e)
    found = []
    for (task, name, eps), group in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], -1 if kv[0][2] is None else kv[0][2])):
        base = group["base"][0] if group["base"] else None
        purified = sorted(group["purified"], key=lambda e: e.labels["defence"])
        unpurified = cluster_bootstrap(per_sample(base, metric), n_boot, seed, confidence) \
            if base is not None else (None, None, None)
        worst, strongest = (None, None, None), Counter()
        if purified:
            tables = {e.labels["defence"]: per_sample(e, metric) for e in purified}
            values, strongest = worst_over(tables)
            worst = cluster_bootstrap(values, n_boot, seed, confidence)
        found.append(Protection(task, name, eps, base, purified, unpurified, worst, strongest))
    return found


@dataclass
class Heatmap:
    """Protection (rows) x purifier (columns): ``cells[(row, column)] = (value, eval ref)``."""

    title: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], tuple[float | None, str]]
    note: str


@dataclass
class Curve:
    """Metric vs budget, one line per protection (``(eps, value)`` points) and its unpurified."""

    title: str
    metric: str
    lines: dict[str, list[tuple[float, float]]]
    unpurified: dict[str, list[tuple[float, float]]]


def row_name(p: Protection) -> str:
    return f"{p.name} @ {eps_label(p.eps)}"


def worst_case_tables(found: list[Protection], metric: str) -> list[Table]:
    """Per task: protection x budget, unpurified beside the worst case over purifiers."""
    tables = []
    for task in sorted({p.task for p in found}):
        rows, plot = [], []
        for p in (p for p in found if p.task == task):
            refs = [e.ref for e in ([p.base] if p.base else []) + p.purified]
            strongest = ", ".join(f"{name} ({n})" for name, n in p.strongest.most_common())
            rows.append([p.name, eps_label(p.eps), cell(*p.unpurified), cell(*p.worst),
                         ", ".join(e.labels["defence"] for e in p.purified) or "-",
                         strongest or "-", ", ".join(refs)])
            plot.append({"name": f"{task}/{row_name(p)}", "task": task, "protection": p.name,
                         "attack_eps": p.eps, "unpurified": p.unpurified[0],
                         "worst_case": p.worst[0], "worst_case_low": p.worst[1],
                         "worst_case_high": p.worst[2], "evals": refs})
        header = ["protection", "eps", f"unpurified {metric_header(metric)}",
                  f"worst case over purifiers {metric_header(metric)}", "purifiers",
                  "strongest purifier (samples)", "eval"]
        tables.append(Table(f"{task}: worst case over purifiers ({METRIC_NAMES[metric]})",
                            header, rows,
                            "per sample, the purifier whose edit the attack disrupted least "
                            "(highest value), then the mean; [95% cluster bootstrap over source "
                            "images]. A protection holds only if the worst case stays low.",
                            plot))
    return tables


def heatmaps(found: list[Protection], metric: str) -> list[Heatmap]:
    """Per task: protection x (none, each purifier, worst case), cells the metric's mean."""
    maps = []
    for task in sorted({p.task for p in found}):
        chosen = [p for p in found if p.task == task and p.purified]
        if not chosen:
            continue
        purifiers = sorted({e.labels["defence"] for p in chosen for e in p.purified})
        cells = {}
        for p in chosen:
            refs = [e.ref for e in p.purified]
            if p.base is not None:
                cells[(row_name(p), "none")] = (p.base.value(metric), p.base.ref)
            for e in p.purified:
                cells[(row_name(p), e.labels["defence"])] = (e.value(metric), e.ref)
            cells[(row_name(p), "worst case")] = (p.worst[0], "max of " + ", ".join(refs))
        maps.append(Heatmap(f"{task}: protection x purifier ({METRIC_NAMES[metric]})",
                            [row_name(p) for p in chosen], ["none"] + purifiers + ["worst case"],
                            cells, "higher means the purifier undid more of the protection."))
    return maps


def heatmap_plot(maps: list[Heatmap], metric: str) -> list[dict]:
    return [{"name": f"{m.title.split(':')[0]}/{row}/{column}", "protection": row,
             "purifier": column, metric: value, "eval": ref}
            for m in maps for (row, column), (value, ref) in m.cells.items()]


def curves(found: list[Protection], metric: str) -> list[Curve]:
    """Per task with at least one known budget: metric vs eps, per protection."""
    result = []
    for task in sorted({p.task for p in found}):
        chosen = [p for p in found if p.task == task and p.eps is not None]
        if not chosen:
            continue
        lines: dict[str, list] = {}
        unpurified: dict[str, list] = {}
        for p in chosen:
            if p.worst[0] is not None:
                lines.setdefault(p.name, []).append((p.eps, p.worst[0]))
            if p.unpurified[0] is not None:
                unpurified.setdefault(p.name, []).append((p.eps, p.unpurified[0]))
        result.append(Curve(f"{task}: {METRIC_NAMES[metric]} vs budget (eps)", metric,
                            lines, unpurified))
    return result
