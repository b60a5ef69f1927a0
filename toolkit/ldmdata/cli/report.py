"""``ldmdata report METRICS_DIR --out DIR``: tables, image grids and DVC plots data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ldmdata.cli.common import console, user_errors
from ldmdata.report import DEFAULTS, report

Opt = typer.Option


@user_errors
def report_command(
    metrics_dir: Annotated[Path, typer.Argument(help="Folder of evaluation summaries.")],
    out: Annotated[Path, Opt("--out", help="Folder for report.md, report.html, plots/.")],
    metrics: Annotated[str, Opt("--metrics", help="Comma-separated metric columns.")
    ] = ",".join(DEFAULTS["metrics"]),
    matrix_metric: Annotated[str, Opt(
        "--matrix-metric", help="Metric of the transfer matrices.")] = DEFAULTS["matrix_metric"],
    grid_samples: Annotated[int, Opt(
        "--grid-samples", help="Image-grid rows per attack.")] = DEFAULTS["grid_samples"],
    thumb_size: Annotated[int, Opt(
        "--thumb-size", help="Longest side of grid images (px).")] = DEFAULTS["thumb_size"],
    title: Annotated[str, Opt("--title", help="Report title.")] = DEFAULTS["title"],
) -> None:
    """Write the study's tables and image grids as Markdown and self-contained HTML."""
    settings = {"metrics": [m.strip() for m in metrics.split(",") if m.strip()],
                "matrix_metric": matrix_metric, "grid_samples": grid_samples,
                "thumb_size": thumb_size, "title": title}
    paths = report(metrics_dir, out, settings)
    console.print(f"{paths['markdown']}, {paths['html']}, plots in {out / 'plots'}",
                  markup=False)
