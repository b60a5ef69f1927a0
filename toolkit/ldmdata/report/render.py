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
from ldmdata.report.tables import Evaluation, Table, target_label

GRID_COLUMNS = ("source", "adversarial", "edit of clean", "edit of adversarial")


@dataclass
class GridRow:
    caption: str
    images: list[tuple[str, bytes | None]]  # (file name under images/, PNG bytes)


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


def image_grids(evals: list[Evaluation], samples: int, size: int) -> dict[str, list[GridRow]]:
    """Per white-box evaluation: source | adversarial | edit of clean | edit of adversarial."""
    grids: dict[str, list[GridRow]] = {}
    for e in evals:
        if not e.white_box or e.table is None or not e.table.is_file() or samples < 1:
            continue
        picked = pq.read_table(e.table).to_pylist()[:samples]
        edits = _folder(e, "edits")
        edit_rows = {r["id"]: r for r in iter_rows(edits, columns=["id", "input_id"],
                                                   decode_images=False)} if edits else {}
        dataset = _folder(e, "dataset")
        source_column = "hr" if dataset and read_manifest(dataset).get("kind") == "sr" else "image"
        sources = _fetch(dataset, [r["sample_id"] for r in picked], source_column)
        adversarial = _fetch(_folder(e, "adversarial"),
                             [edit_rows.get(r["id"], {}).get("input_id") for r in picked])
        clean_edits = _fetch(_folder(e, "reference_edits"), [r["reference_id"] for r in picked])
        adv_edits = _fetch(edits, [r["id"] for r in picked])
        rows = []
        for i, r in enumerate(picked):
            images = [sources.get(r["sample_id"]),
                      adversarial.get(edit_rows.get(r["id"], {}).get("input_id")),
                      clean_edits.get(r["reference_id"]), adv_edits.get(r["id"])]
            names = [f"{e.ref}-{i}-{c.replace(' ', '-')}.png" for c in GRID_COLUMNS]
            rows.append(GridRow(f"{r['sample_id']}, prompt {r['prompt_index']}: {r['prompt']}",
                                [(n, _thumb(im, size)) for n, im in zip(names, images,
                                                                         strict=True)]))
        grids[f"{e.labels['task']} / {target_label(e)} ({e.ref})"] = rows
    return grids


def _md_table(table: Table) -> list[str]:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = [f"### {table.title}", "", "| " + " | ".join(map(esc, table.header)) + " |",
             "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"_{table.note}_"]
    return lines + [""]


def _eval_lines(evals: list[Evaluation]) -> list[list[str]]:
    """Per evaluation: its file's hash and every input's DVC hash, models and code version."""
    rows = []
    for e in evals:
        inputs = e.provenance["inputs"]
        hashes = "; ".join(f"{role} {rec['path']} ({rec['dvc_hash']})"
                           for role, rec in sorted(inputs.items()))
        models = "; ".join(f"{role} {rec.get('id')}@{rec.get('revision')}"
                           for role, rec in sorted(e.provenance.get("models", {}).items()))
        code = e.provenance.get("code", {})
        version = code.get("git_commit", code.get("ldmdata", ""))
        rows.append([e.ref, e.file_record["path"], e.file_record["dvc_hash"], hashes, models,
                     str(version) + (" (dirty)" if code.get("git_dirty") else "")])
    return rows


EVAL_HEADER = ["eval", "metrics file", "file md5", "inputs (DVC hashes)", "models", "code"]


def markdown(title: str, sections: list[tuple[str, list[Table]]], grids, evals, prov) -> str:
    lines = [f"# {title}", ""]
    for heading, tables in sections:
        if not tables:
            continue
        lines += [f"## {heading}", ""]
        for table in tables:
            lines += _md_table(table)
    if grids:
        lines += ["## Image grids", ""]
        for name, rows in grids.items():
            lines += [f"### {name}", "", "| " + " | ".join(GRID_COLUMNS) + " |",
                      "|" + "---|" * len(GRID_COLUMNS)]
            for row in rows:
                cells = [f"![{c}](images/{n})" if data else "n/a"
                         for c, (n, data) in zip(GRID_COLUMNS, row.images, strict=True)]
                lines.append("| " + " | ".join(cells) + " |")
            lines += [""] + [f"- {row.caption}" for row in rows] + [""]
    lines += ["## Provenance", ""]
    lines += _md_table(Table("evaluations", EVAL_HEADER, _eval_lines(evals)))
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
    return (f"<h3>{html.escape(table.title)}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{note}")


STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1400px}"
         "table{border-collapse:collapse;margin:.5em 0}"
         "td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;vertical-align:top}"
         "th{background:#eee}.note{color:#555;font-size:12px}img{display:block}")


def html_page(title: str, sections: list[tuple[str, list[Table]]], grids, evals, prov) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for heading, tables in sections:
        if tables:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            parts += [_html_table(t) for t in tables]
    if grids:
        parts.append("<h2>Image grids</h2>")
        for name, rows in grids.items():
            parts.append(f"<h3>{html.escape(name)}</h3><table><tr>"
                         + "".join(f"<th>{c}</th>" for c in GRID_COLUMNS) + "<th>sample</th></tr>")
            for row in rows:
                cells = "".join(
                    "<td><img alt='' src='data:image/png;base64,"
                    f"{base64.b64encode(data).decode()}'></td>" if data else "<td>n/a</td>"
                    for _, data in row.images)
                parts.append(f"<tr>{cells}<td>{html.escape(row.caption)}</td></tr>")
            parts.append("</table>")
    parts.append("<h2>Provenance</h2>")
    parts.append(_html_table(Table("evaluations", EVAL_HEADER, _eval_lines(evals))))
    parts.append(embed_html(prov))
    parts.append("</body></html>")
    return "\n".join(parts)
