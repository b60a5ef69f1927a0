"""Charts as inline SVG (no script, no network): dot-and-interval charts, heatmaps, lines.

Axes span the data (padded by a tenth of its range), not zero to the maximum: SSIM values all
near 1 would otherwise look equal. Every chart says so under its axis. Long labels wrap.
"""

from __future__ import annotations

import html
import math
import textwrap
from dataclasses import dataclass

from ldmdata.report.worst_case import Curve, Heatmap

FONT = 12           # px
CHAR = 6.6          # px, mean glyph width of FONT-size sans-serif
LINE = 14           # px between wrapped label lines
WRAP = 30           # characters per label line
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22")


@dataclass
class Chart:
    """An SVG chart: ``name`` is its file under ``images/`` (Markdown links it there)."""

    name: str
    title: str
    svg: str


def data_range(values: list[float]) -> tuple[float, float]:
    """The axis range: the values' span padded by 10% (or by a small margin if flat)."""
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or max(abs(high) * 0.05, 1e-3)
    return low - pad, high + pad


def ticks(low: float, high: float, n: int = 5) -> list[float]:
    return [low + (high - low) * i / (n - 1) for i in range(n)]


def fmt(value: float, step: float | None = None) -> str:
    """``value`` with enough decimals to tell apart numbers ``step`` apart (4 by default)."""
    decimals = 4 if not step else max(0, -math.floor(math.log10(abs(step))))
    return f"{value:.{decimals}f}"


def _note(x: float, y: float, text: str, width: int = 95) -> tuple[str, float]:
    """A grey note wrapped at ``width`` characters; returns it and its height."""
    lines = _wrap(text, width)
    spans = "".join(f"<tspan x='{x:.1f}' y='{y + i * LINE:.1f}'>{_esc(s)}</tspan>"
                    for i, s in enumerate(lines))
    return f"<text fill='#555'>{spans}</text>", len(lines) * LINE


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _wrap(text: str, width: int = WRAP) -> list[str]:
    return textwrap.wrap(str(text), width, break_long_words=True) or [""]


def _label(x: float, y: float, text: str, anchor: str = "end") -> str:
    """A wrapped label, its lines centred on ``y``."""
    lines = _wrap(text)
    top = y - (len(lines) - 1) * LINE / 2
    spans = "".join(f"<tspan x='{x:.1f}' y='{top + i * LINE + FONT / 3:.1f}'>{_esc(s)}</tspan>"
                    for i, s in enumerate(lines))
    return f"<text text-anchor='{anchor}'>{spans}</text>"


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (f"<svg class='chart' xmlns='http://www.w3.org/2000/svg' role='img' "
            f"width='{width:.0f}' height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}' "
            f"font-family='sans-serif' font-size='{FONT}'><title>{_esc(title)}</title>"
            f"<text x='4' y='16' font-weight='bold'>{_esc(title)}</text>"
            + "".join(body) + "</svg>")


def _x_axis(left: float, right: float, y: float, low: float, high: float, note: str) -> list[str]:
    parts = [f"<line x1='{left}' y1='{y}' x2='{right}' y2='{y}' stroke='#333'/>"]
    step = (high - low) / 4
    for t in ticks(low, high):
        x = left + (t - low) / (high - low) * (right - left)
        parts.append(f"<line x1='{x:.1f}' y1='{y}' x2='{x:.1f}' y2='{y + 4}' stroke='#333'/>"
                     f"<text x='{x:.1f}' y='{y + 16}' text-anchor='middle'>{fmt(t, step)}</text>")
    parts.append(_note(min(left, 8), y + 32, note, 70)[0])
    return parts


def dot_chart(title: str, axis: str, items: list[tuple[str, float | None, float | None,
                                                      float | None]]) -> str | None:
    """One row per ``(label, value, low, high)``: a dot and its interval on a data-range axis."""
    known = [i for i in items if i[1] is not None]
    if not known:
        return None
    low, high = data_range([v for i in known for v in i[1:] if v is not None])
    label_w = CHAR * min(WRAP, max(len(line) for i in known for line in _wrap(i[0]))) + 12
    heights = [max(22, len(_wrap(i[0])) * LINE + 8) for i in known]
    left, right, top = label_w, label_w + 420, 30
    width, y, body = right + 30, top, []
    for (label, value, lo, hi), h in zip(known, heights, strict=True):
        cy = y + h / 2

        def at(v):
            return left + (v - low) / (high - low) * (right - left)

        body.append(_label(left - 8, cy, label))
        body.append(f"<line x1='{left}' y1='{cy:.1f}' x2='{right}' y2='{cy:.1f}' "
                    "stroke='#eee'/>")
        if lo is not None and hi is not None:
            body.append(f"<line x1='{at(lo):.1f}' y1='{cy:.1f}' x2='{at(hi):.1f}' y2='{cy:.1f}' "
                        "stroke='#1f77b4' stroke-width='2'/>")
        body.append(f"<circle cx='{at(value):.1f}' cy='{cy:.1f}' r='4' fill='#1f77b4'>"
                    f"<title>{_esc(label)}: {fmt(value)}</title></circle>")
        y += h
    step = (high - low) / 4
    body += _x_axis(left, right, y + 4, low, high, f"{axis}; axis {fmt(low, step)} to "
                    f"{fmt(high, step)}, "
                    "chosen from the data (not from 0)")
    return _svg(max(width, 500), y + 4 + 32 + 2 * LINE, title, body)


def _shade(t: float) -> str:
    """White (t=0) to dark blue (t=1)."""
    r, g, b = (int(255 + (c - 255) * t) for c in (8, 69, 148))
    return f"rgb({r},{g},{b})"


def heatmap_svg(m: Heatmap) -> str | None:
    """Cells coloured on the range of their own values, each labelled with its value."""
    values = [v for v, _ in m.cells.values() if v is not None]
    if not values:
        return None
    low, high = min(values), max(values)
    label_w = CHAR * min(WRAP, max(len(line) for r in m.rows for line in _wrap(r))) + 12
    cell_w = max(70, CHAR * min(18, max(len(c) for c in m.columns)) + 10)
    head_lines = max(len(_wrap(c, 18)) for c in m.columns)
    row_h = max(28, max(len(_wrap(r)) for r in m.rows) * LINE + 8)
    top = 30 + head_lines * LINE + 6
    body = []
    for j, column in enumerate(m.columns):
        x = label_w + j * cell_w + cell_w / 2
        spans = "".join(f"<tspan x='{x:.1f}' y='{30 + (i + 1) * LINE:.1f}'>{_esc(s)}</tspan>"
                        for i, s in enumerate(_wrap(column, 18)))
        body.append(f"<text text-anchor='middle'>{spans}</text>")
    for i, row in enumerate(m.rows):
        y = top + i * row_h
        body.append(_label(label_w - 8, y + row_h / 2, row))
        for j, column in enumerate(m.columns):
            value, ref = m.cells.get((row, column), (None, ""))
            x = label_w + j * cell_w
            t = 0.5 if value is None or high == low else (value - low) / (high - low)
            fill = "#f4f4f4" if value is None else _shade(0.1 + 0.8 * t)
            ink = "#fff" if value is not None and t > 0.55 else "#000"
            text = "n/a" if value is None else fmt(value, (high - low) / 4 or None)
            body.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{cell_w}' height='{row_h}' "
                        f"fill='{fill}' stroke='#fff'><title>{_esc(row)} / {_esc(column)}: "
                        f"{text} ({_esc(ref)})</title></rect>"
                        f"<text x='{x + cell_w / 2:.1f}' y='{y + row_h / 2 + 4:.1f}' "
                        f"text-anchor='middle' fill='{ink}'>{text}</text>")
    bottom = top + len(m.rows) * row_h
    width = max(label_w + len(m.columns) * cell_w + 10, 560)
    note, height = _note(4, bottom + 18, f"colour from {fmt(low)} (light) to {fmt(high)} "
                         f"(dark), the range of these cells; {m.note}", int(width / CHAR) - 2)
    return _svg(width, bottom + 18 + height, m.title, body + [note])


def line_svg(c: Curve) -> str | None:
    """One coloured line per protection (worst case, solid; unpurified, dashed)."""
    points = [pt for series in (c.lines, c.unpurified) for line in series.values() for pt in line]
    if not points:
        return None
    xs = [x for x, _ in points]
    x_low, x_high = (min(xs), max(xs)) if len(set(xs)) > 1 else data_range(xs)
    y_low, y_high = data_range([y for _, y in points])
    left, top, plot_w, plot_h = 60, 30, 420, 240
    names = sorted(set(c.lines) | set(c.unpurified))

    def at(x, y):
        return (left + (x - x_low) / (x_high - x_low) * plot_w,
                top + plot_h - (y - y_low) / (y_high - y_low) * plot_h)

    body = [f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='none' "
            "stroke='#ccc'/>"]
    for t in ticks(y_low, y_high):
        _, y = at(x_low, t)
        body.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end'>"
                    f"{fmt(t, (y_high - y_low) / 4)}</text>")
    for x in sorted(set(xs)):
        px, _ = at(x, y_low)
        body.append(f"<text x='{px:.1f}' y='{top + plot_h + 16}' text-anchor='middle'>"
                    f"{x:g}</text>")
    legend_x, legend_y = left + plot_w + 20, top + 6
    for k, name in enumerate(names):
        colour = PALETTE[k % len(PALETTE)]
        for series, dash in ((c.lines, ""), (c.unpurified, " stroke-dasharray='5 4'")):
            line = sorted(series.get(name, []))
            xy = [at(x, y) for x, y in line]
            if len(xy) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
                body.append(f"<polyline points='{path}' fill='none' stroke='{colour}' "
                            f"stroke-width='2'{dash}/>")
            body += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='{colour}'><title>"
                     f"{_esc(name)} eps {ex:g}: {fmt(ey)}</title></circle>"
                     for (x, y), (ex, ey) in zip(xy, line, strict=True)]
        body.append(f"<rect x='{legend_x}' y='{legend_y - 9}' width='12' height='3' "
                    f"fill='{colour}'/>")
        body.append(_label(legend_x + 18, legend_y - 8, name, anchor="start"))
        legend_y += len(_wrap(name)) * LINE + 8
    bottom = top + plot_h
    note, height = _note(8, bottom + 34, f"x: eps (attack budget); solid: worst case over "
                         f"purifiers, dashed: unpurified; {c.metric} axis {fmt(y_low)} to "
                         f"{fmt(y_high)}, chosen from the data (not from 0)", 75)
    width = legend_x + 18 + CHAR * min(WRAP, max(len(n) for n in names)) + 10
    return _svg(max(width, 560), max(bottom + 34 + height, legend_y + 10), c.title,
                body + [note])
