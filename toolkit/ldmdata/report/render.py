"""Markdown and HTML rendering of the report, and its image grids."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from ldmdata.dataset import iter_rows, read_manifest
from ldmdata.dataset.png import encode_png
from ldmdata.provenance import embed_html, project_root
from ldmdata.report.charts import Chart
from ldmdata.report.tables import Evaluation, Table, target_label

GRID_COLUMNS = ("source", "adversarial", "edit of clean", "edit of adversarial")
TINY_PREFIX = "tiny-sha256:"


@dataclass
class GridRow:
    caption: str
    images: list[tuple[str, bytes | None]]  # (file name under images/, PNG bytes)


@dataclass
class Grid:
    """One evaluation's image grid: column names and rows (inpainting adds the mask)."""

    columns: tuple[str, ...]
    rows: list[GridRow]


def _folder(e: Evaluation, role: str) -> Path | None:
    record = e.provenance["inputs"].get(role)
    if not record:
        return None
    path = Path(record["path"])
    root = project_root(e.path.parent)
    return root / path if not path.is_absolute() and root is not None else path


def _fetch(folder: Path | None, ids: list[str], column: str = "image") -> dict[str, Image.Image]:
    """``{id: image}`` for ``ids`` in ``folder`` (only matching rows are decoded)."""
    wanted, found = set(ids), {}
    if folder is None or not folder.is_dir() or not wanted:
        return found
    for row in iter_rows(folder, columns=["id", column], decode_images=False):
        if row["id"] in wanted:
            found[row["id"]] = Image.open(io.BytesIO(row[column]["bytes"])).convert("RGB")
            if len(found) == len(wanted):
                break
    return found


def _thumb(image: Image.Image | None, size: int) -> bytes | None:
    if image is None:
        return None
    image = image.copy()
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return encode_png(image)


def image_grids(evals: list[Evaluation], samples: int, size: int) -> dict[str, Grid]:
    """Per white-box evaluation: source | (mask) | adversarial | edit of clean | edit of adv."""
    grids: dict[str, Grid] = {}
    for e in evals:
        if not e.white_box or e.table is None or not e.table.is_file() or samples < 1:
            continue
        picked = pq.read_table(e.table).to_pylist()[:samples]
        edits = _folder(e, "edits")
        edit_rows = {r["id"]: r for r in iter_rows(edits, columns=["id", "input_id"],
                                                   decode_images=False)} if edits else {}
        dataset = _folder(e, "dataset")
        kind = read_manifest(dataset).get("kind") if dataset else None
        sample_ids = [r["sample_id"] for r in picked]
        sources = _fetch(dataset, sample_ids, "hr" if kind == "sr" else "image")
        masks = _fetch(dataset, sample_ids, "mask") if kind == "inpaint" else None
        adversarial = _fetch(_folder(e, "adversarial"),
                             [edit_rows.get(r["id"], {}).get("input_id") for r in picked])
        clean_edits = _fetch(_folder(e, "reference_edits"), [r["reference_id"] for r in picked])
        adv_edits = _fetch(edits, [r["id"] for r in picked])
        columns = GRID_COLUMNS if masks is None else ("source", "mask") + GRID_COLUMNS[1:]
        rows = []
        for i, r in enumerate(picked):
            images = [sources.get(r["sample_id"]),
                      adversarial.get(edit_rows.get(r["id"], {}).get("input_id")),
                      clean_edits.get(r["reference_id"]), adv_edits.get(r["id"])]
            if masks is not None:
                images.insert(1, masks.get(r["sample_id"]))
            names = [f"{e.ref}-{i}-{c.replace(' ', '-')}.png" for c in columns]
            rows.append(GridRow(f"{r['sample_id']}, prompt {r['prompt_index']}: {r['prompt']}",
                                [(n, _thumb(im, size)) for n, im in zip(names, images,
                                                                         strict=True)]))
        grids[f"{e.labels['task']} / {target_label(e)} ({e.ref})"] = Grid(columns, rows)
    return grids


def tiny_banner(evals: list[Evaluation]) -> str | None:
    """A warning when any number comes from the tiny random-weight models."""
    tiny = sorted({f"{role} {rec.get('id')}" for e in evals
                   for role, rec in e.provenance.get("models", {}).items()
                   if str(rec.get("revision") or "").startswith(TINY_PREFIX)})
    if not tiny:
        return None
    return ("These numbers come from the tiny random-weight test models (revision "
            f"{TINY_PREFIX}...): they check the pipeline, not the protections. "
            f"Tiny models used: {'; '.join(tiny)}.")


def _md_table(table: Table) -> list[str]:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = [f"### {table.title}", "", "| " + " | ".join(map(esc, table.header)) + " |",
             "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"_{table.note}_"]
    return lines + [""]


def _eval_records(e: Evaluation) -> dict:
    """An evaluation's provenance as display fields: file, inputs, models, code."""
    code = e.provenance.get("code", {})
    version = str(code.get("git_commit", code.get("ldmdata", "")))
    return {
        "inputs": [(role, rec["path"], rec["dvc_hash"])
                   for role, rec in sorted(e.provenance["inputs"].items())],
        "models": [(role, str(rec.get("id")), str(rec.get("revision")))
                   for role, rec in sorted(e.provenance.get("models", {}).items())],
        "code": version + (" (dirty)" if code.get("git_dirty") else ""),
    }


def _md_provenance(evals: list[Evaluation]) -> list[str]:
    lines = ["### evaluations: metrics files and their inputs (DVC hashes)", ""]
    for e in evals:
        r = _eval_records(e)
        lines.append(f"- **{e.ref}** `{e.file_record['path']}` (md5 "
                     f"`{e.file_record['dvc_hash']}`), code {r['code']}")
        lines += [f"  - {role} `{path}` (`{digest}`)" for role, path, digest in r["inputs"]]
        lines += [f"  - model {role} `{name}@{revision}`" for role, name, revision in r["models"]]
    return lines + [""]


def _md_item(item: Table | Chart) -> list[str]:
    if isinstance(item, Chart):
        return [f"![{item.title}](images/{item.name})", ""]
    return _md_table(item)


def markdown(title: str, sections: list[tuple[str, list]], grids: dict[str, Grid],
             evals: list[Evaluation], prov: dict) -> str:
    lines = [f"# {title}", ""]
    banner = tiny_banner(evals)
    if banner:
        lines += [f"> **Warning:** {banner}", ""]
    for heading, items in sections:
        if not items:
            continue
        lines += [f"## {heading}", ""]
        for item in items:
            lines += _md_item(item)
    if grids:
        lines += ["## Image grids", ""]
        for name, grid in grids.items():
            lines += [f"### {name}", "", "| " + " | ".join(grid.columns) + " |",
                      "|" + "---|" * len(grid.columns)]
            for row in grid.rows:
                cells = [f"![{c}](images/{n})" if data else "n/a"
                         for c, (n, data) in zip(grid.columns, row.images, strict=True)]
                lines.append("| " + " | ".join(cells) + " |")
            lines += [""] + [f"- {row.caption}" for row in grid.rows] + [""]
    lines += ["## Provenance", ""] + _md_provenance(evals)
    code = prov["code"]
    lines += [f"Report code: ldmdata {code.get('ldmdata')}"
              + (f", git {code['git_commit']}" if code.get("git_commit") else "")
              + (" (dirty)" if code.get("git_dirty") else "")
              + ". Check every hash with `ldmdata trace` on this file.", "", embed_html(prov), ""]
    return "\n".join(lines)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    note = f"<p class='note'>{html.escape(table.note)}</p>" if table.note else ""
    return (f"<h3>{html.escape(table.title)}</h3><div class='scroll'><table><thead><tr>{head}"
            f"</tr></thead><tbody>{body}</tbody></table></div>{note}")


def _short(digest: str) -> str:
    """10 characters of the hash (after a ``kind:`` prefix), the whole value in a tooltip."""
    kind, _, value = str(digest).rpartition(":")
    shown = (f"{kind[:4]}:" if kind else "") + value[:10]
    full = html.escape(str(digest), quote=True)
    return f"<code class='hash' title='{full}'>{html.escape(shown)}</code>"


def _html_provenance(evals: list[Evaluation]) -> str:
    rows, full = [], []
    for e in evals:
        r = _eval_records(e)
        full.append(f"{e.ref} metrics {e.file_record['path']} md5 {e.file_record['dvc_hash']}")
        full += [f"{e.ref} {role} {path} {digest}" for role, path, digest in r["inputs"]]
        full += [f"{e.ref} model {role} {name}@{rev}" for role, name, rev in r["models"]]
        inputs = "".join(f"<li>{html.escape(role)} <code class='path'>{html.escape(path)}</code> "
                         f"{_short(digest)}</li>" for role, path, digest in r["inputs"])
        models = "".join(f"<li>{html.escape(role)} <code class='path'>{html.escape(name)}</code> "
                         f"{_short(revision)}</li>" for role, name, revision in r["models"])
        rows.append(f"<tr><td>{e.ref}</td><td><code class='path'>"
                    f"{html.escape(e.file_record['path'])}</code><br>md5 "
                    f"{_short(e.file_record['dvc_hash'])}</td><td><ul>{inputs}</ul></td>"
                    f"<td><ul>{models}</ul></td><td>{_short(r['code'])}</td></tr>")
    return ("<h3>evaluations</h3><p class='note'>hashes are shortened: hover for the full "
            "value, or open the full records below.</p><table class='provenance'>"
            "<colgroup><col style='width:5%'><col style='width:22%'><col style='width:35%'>"
            "<col style='width:28%'><col style='width:10%'></colgroup><thead><tr>"
            "<th>eval</th><th>metrics file</th><th>inputs (DVC hashes)</th><th>models</th>"
            "<th>code</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            "<details><summary>full hashes</summary><pre>" + html.escape("\n".join(full))
            + "</pre></details>")


STYLE = ("body{font-family:sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;"
         "line-height:1.4}"
         "table{border-collapse:collapse;margin:.5em 0}.scroll{overflow-x:auto}"
         "td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;vertical-align:top;"
         "overflow-wrap:anywhere}"
         "th{background:#eee}.note{color:#555;font-size:12px}img{display:block}"
         ".banner{background:#fff3cd;border:1px solid #e0b000;padding:.6em 1em;margin:1em 0}"
         ".provenance{table-layout:fixed;width:100%}.provenance ul{margin:0;padding-left:1.1em}"
         ".path{overflow-wrap:anywhere;word-break:break-all}.hash{cursor:help}"
         "svg.chart{display:block;margin:.8em 0;max-width:100%;height:auto}"
         "details pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:11px}")


def _html_item(item: Table | Chart) -> str:
    if isinstance(item, Chart):
        return f"<figure>{item.svg}</figure>"
    return _html_table(item)


def html_page(title: str, sections: list[tuple[str, list]], grids: dict[str, Grid],
              evals: list[Evaluation], prov: dict) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    banner = tiny_banner(evals)
    if banner:
        parts.append(f"<p class='banner' role='alert'><strong>Warning:</strong> "
                     f"{html.escape(banner)}</p>")
    for heading, items in sections:
        if items:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            parts += [_html_item(item) for item in items]
    if grids:
        parts.append("<h2>Image grids</h2>")
        for name, grid in grids.items():
            parts.append(f"<h3>{html.escape(name)}</h3><div class='scroll'><table "
                         "class='grid'><tr>" + "".join(f"<th>{c}</th>" for c in grid.columns)
                         + "<th>sample</th></tr>")
            for row in grid.rows:
                cells = "".join(
                    f"<td><img alt='{html.escape(c)}' src='data:image/png;base64,"
                    f"{base64.b64encode(data).decode()}'></td>" if data else "<td>n/a</td>"
                    for c, (_, data) in zip(grid.columns, row.images, strict=True))
                parts.append(f"<tr>{cells}<td>{html.escape(row.caption)}</td></tr>")
            parts.append("</table></div>")
    parts.append("<h2>Provenance</h2>")
    parts.append(_html_provenance(evals))
    parts.append(embed_html(prov))
    parts.append("</body></html>")
    return "\n".join(parts)
