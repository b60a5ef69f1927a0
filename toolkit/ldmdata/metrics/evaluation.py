"""Evaluate one set of edits against the edits of the clean images, with provenance.

PSNR, SSIM and MS-SSIM compare each edit with the reference edit of the same sample, prompt
and seed (the edit of the clean image); CLIP score compares each edit with its prompt; FID
compares the edits with the dataset's source images; IS scores the edits. Images are prepared
and compared as the chosen protocol says (:mod:`ldmdata.metrics.protocols`: ``ldmdata`` or the
study's). Per-sample values go to a parquet table, the summary to a JSON file for DVC: per
metric a headline ``mean`` (for ``statistic`` ``mean`` the mean of per-sample values, ``pooled``
one PSNR of the pooled MSE, ``set`` FID / IS of the whole set) and a seeded cluster-bootstrap
interval over source images (:mod:`ldmdata.metrics.intervals`). Both files carry the DVC
hashes of every input, the models, the params and the code version.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore

from ldmdata.dataset import iter_rows, read_manifest
from ldmdata.dataset.inputs import IMAGE_COLUMN, folder_record
from ldmdata.dataset.writer import write_json_atomic
from ldmdata.errors import LdmdataError
from ldmdata.metrics.features import (
    ClipImageFeatures,
    ClipZeroShotLogits,
    Precomputed,
    as_uint8,
    choose_features,
    inception_modules,
)
from ldmdata.metrics.intervals import (
    CI_UNIT,
    cluster_draws,
    cluster_mean,
    cluster_rows,
    percentile_interval,
    pooled_psnr,
    resampled_rows,
)
from ldmdata.metrics.names import HIGHER_IS_BETTER
from ldmdata.metrics.protocols import PAIR_METRICS, pair_metrics, prepare, ssim_options
from ldmdata.metrics.settings import evaluate_settings
from ldmdata.models.clip import ClipScorer
from ldmdata.models.editors import describe_model, pick_device, quiet_loading
from ldmdata.models.refs import ModelRef
from ldmdata.provenance import PARQUET_KEY, portable_path, provenance
from ldmdata.seeds import derive_seed

PRECISIONS = {"float64": torch.float64, "float32": torch.float32}



def model_label(record: dict | None) -> str | None:
    """A short model name for tables: ``tiny:sd_img2img`` or ``org/name@rev``."""
    if not record:
        return None
    revision = record.get("revision") or ""
    if revision.startswith(("tiny-sha256:", "sha256:")):
        return f"tiny:{record.get('role')}"
    shown = record["id"]
    return shown if revision in ("", "main") else f"{shown}@{revision[:12]}"


def _edit_manifest(folder: Path, what: str) -> dict:
    manifest = read_manifest(folder)
    if manifest.get("kind") != "edit":
        raise LdmdataError(f"{what} {folder} is a {manifest.get('kind')!r} set, not edits")
    return manifest


def check_comparable(test: dict, reference: dict) -> None:
    """Same task, editor, model and edit settings (so only the input differs)."""
    for key in ("task", "editor", "model", "params"):
        if test.get(key) != reference.get(key):
            raise LdmdataError(
                f"the reference edits were made with another {key} ({reference.get(key)} vs "
                f"{test.get(key)}); edit the clean dataset with the same settings"
            )


def upstream_records(manifest: dict) -> dict:
    """The adversarial / defended sets an edit read, as its manifest recorded them."""
    images = manifest["inputs"]["images"]
    records = {}
    if images["role"] == "defended":
        records["defended"] = images
        defended = read_manifest_or_none(images["path"])
        if defended and (defended.get("input") or {}).get("kind") == "attack":
            given = defended["input"]
            records["adversarial"] = {k: given[k] for k in
                                      ("role", "path", "kind", "dvc_hash", "content_hash", "n")}
    elif images["role"] == "adversarial":
        records["adversarial"] = images
    return records


def read_manifest_or_none(path: str) -> dict | None:
    try:
        return read_manifest(Path(path))
    except LdmdataError:
        return None


def labels_for(manifest: dict) -> dict:
    attack = manifest.get("attack") or {}
    defence = manifest.get("defence") or {}
    return {
        "task": manifest["task"],
        "editor": manifest["editor"],
        "input_kind": manifest["input_kind"],
        "origin": manifest["origin"],
        "attack_method": attack.get("method"),
        "attack_target": attack.get("target") or attack.get("method"),
        "attack_model": model_label(attack.get("model")),
        "attack_eps": attack.get("eps"),
        "edit_model": model_label(manifest["model"]),
        "defence": defence.get("label"),
        "model_transfer": manifest["transfer"]["model"],
        "prompt_transfer": manifest["transfer"]["prompt"],
        "prompt_index": manifest["selection"]["prompt_index"],
    }


class _Reference:
    """Reference edits by ``(sample_id, prompt_index)``, PNG bytes until used."""

    def __init__(self, folder: Path, keys: set[tuple[str, int]]):
        self.rows: dict[tuple[str, int], tuple[str, bytes]] = {}
        for row in iter_rows(folder, columns=["id", "sample_id", "prompt_index", "image"],
                             decode_images=False):
            key = (row["sample_id"], row["prompt_index"])
            if key in keys:
                self.rows[key] = (row["id"], row["image"]["bytes"])
        missing = sorted(keys - set(self.rows))
        if missing:
            sample, k = missing[0]
            raise LdmdataError(
                f"{len(missing)} edit(s) have no reference edit of the same sample and prompt "
                f"in {folder} (first: sample {sample}, prompt {k}); edit the clean dataset "
                "with those prompts"
            )

    def get(self, key: tuple[str, int]) -> tuple[str, Image.Image]:
        ref_id, data = self.rows[key]
        return ref_id, Image.open(io.BytesIO(data)).convert("RGB")


def _set_metrics(feats: dict, clusters: dict, s: dict, wanted: set, descriptions: dict
                 ) -> dict:
    """FID (edits vs sources) and IS of the edits and of the reference edits, with intervals.

    ``clusters`` holds the source image of every edit row (``edits``) and of every source row
    (``sources``); a bootstrap resample draws source images, with all their rows on both sides.
    """
    order = list(dict.fromkeys(clusters["edits"]))
    rows = cluster_rows(clusters["edits"], order)
    out = {}
    if "fid" in wanted:
        source_rows = cluster_rows(clusters["sources"], order)
        for name, key in (("fid", "test"), ("fid_reference", "ref")):
            out[name] = _fid_summary(feats[key], feats["sources"], rows, source_rows, s,
                                     derive_seed(s["seed"], name), descriptions["fid"])
    if "is" in wanted:
        for name, key in (("is", "test_logits"), ("is_reference", "ref_logits")):
            out[name] = _is_summary(feats[key], rows, s, derive_seed(s["seed"], name),
                                    descriptions["is"])
    return out


def _set_entry(n: int, n_clusters: int, description: str) -> dict:
    return {"mean": None, "ci_low": None, "ci_high": None, "statistic": "set", "n": n,
            "n_clusters": n_clusters, "ci_unit": CI_UNIT, "features": description}


def _draws(rows: list, n_boot: int, seed: int) -> np.ndarray:
    """Cluster resamples of a set metric; none with one source image (no interval)."""
    return cluster_draws(len(rows), n_boot if len(rows) > 1 else 0, seed)


def _fid(metric: FrechetInceptionDistance, fake: torch.Tensor, real: torch.Tensor) -> float:
    metric.reset()
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def _fid_summary(fake, real, rows, source_rows, s, seed, description) -> dict:
    result = {**_set_entry(int(fake.shape[0]), len(rows), description),
              "n_sources": int(real.shape[0])}
    if fake.shape[0] < 2 or real.shape[0] < 2:
        result["note"] = "FID needs at least 2 edits and 2 source images"
        return result
    metric = FrechetInceptionDistance(feature=Precomputed(fake.shape[1]))  # reused: reset
    result["mean"] = _fid(metric, fake, real)
    boots = []
    for counts in _draws(rows, s["set_bootstrap"], seed):
        a, b = resampled_rows(rows, counts), resampled_rows(source_rows, counts)
        if len(a) > 1 and len(b) > 1:
            boots.append(_fid(metric, fake[torch.from_numpy(a)], real[torch.from_numpy(b)]))
    result["ci_low"], result["ci_high"] = percentile_interval(boots, s["confidence"])
    return result


def _inception_score(metric: InceptionScore, logits: torch.Tensor, seed: int) -> float:
    """torchmetrics' IS of precomputed logits; its split shuffle seeded with ``seed``."""
    metric.reset()
    metric.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        # the CPU generator only: torch.manual_seed also queues a seed for every CUDA device,
        # which costs ~1 ms per call on a CUDA build of torch (1000s of bootstrap draws)
        torch.default_generator.manual_seed(seed)
        mean, _ = metric.compute()
    return float(mean)


def _is_summary(logits, rows, s, seed, description) -> dict:
    n = int(logits.shape[0])
    splits = max(1, min(s["is_splits"], n // 10))
    result = {**_set_entry(n, len(rows), description), "splits": splits}
    if n < 2:
        result["note"] = "IS needs at least 2 edits"
        return result
    with warnings.catch_warnings():
        # "saves all features in buffer" (they are ours already) and the split std's
        # degrees-of-freedom warning for one split (the std is not reported).
        warnings.simplefilter("ignore", UserWarning)
        metric = InceptionScore(feature=Precomputed(logits.shape[1]), splits=splits)  # reused
        result["mean"] = _inception_score(metric, logits, seed)
        boots = [_inception_score(metric, logits[torch.from_numpy(resampled_rows(rows, c))],
                                  derive_seed(seed, i))
                 for i, c in enumerate(_draws(rows, s["set_bootstrap"], seed))]
    result["ci_low"], result["ci_high"] = percentile_interval(boots, s["confidence"])
    return result


class _Features:
    """The FID / IS extractors of one evaluation, batched over same-size images."""

    def __init__(self, kind: str, scorer: ClipScorer | None, weights: str | None):
        self.kind = kind
        if kind == "clip":
            self.fid_module = ClipImageFeatures(scorer).to(scorer.device)
            self.is_module = ClipZeroShotLogits(scorer).to(scorer.device)
            name = model_label(describe_model(scorer.ref))
            self.descriptions = {"fid": f"clip ({name}) image embeddings",
                                 "is": f"clip ({name}) zero-shot logits, 80 COCO classes"}
        else:
            self.fid_module, self.is_module = inception_modules(weights)
            self.descriptions = {"fid": "inception-v3 (torch-fidelity weights) 2048-d pool",
                                 "is": "inception-v3 (torch-fidelity weights) logits"}

    def __call__(self, module, images: list[Image.Image]) -> torch.Tensor:
        groups: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.size, []).append(i)
        out: list[torch.Tensor | None] = [None] * len(images)
        for members in groups.values():
            with torch.inference_mode():
                feats = module(as_uint8([images[i] for i in members])).double().cpu()
            for i, f in zip(members, feats, strict=True):
                out[i] = f
        return torch.stack(out)


class EditMetrics:
    """Every metric of a stream of (edit, reference edit) batches, torchmetrics-style:
    :meth:`update` per batch (per-pair values, features for the set metrics), :meth:`compute`
    once (headlines with cluster-bootstrap intervals over source images).

    For sr datasets each batch also brings the HR images: PSNR / SSIM / MS-SSIM of the edit
    and of the reference edit against HR (``<metric>_hr``, ``<metric>_hr_reference``).
    """

    def __init__(self, s: dict, device: torch.device, scorer: ClipScorer | None,
                 extract: _Features | None):
        self.s, self.device, self.scorer, self.extract = s, device, scorer, extract
        self.wanted = set(s["metrics"])
        self.table: list[dict] = []
        self.feats: dict[str, list] = {"test": [], "ref": [], "test_logits": [],
                                       "ref_logits": []}

    def update(self, rows: list[dict], tests: list[Image.Image], refs: list[Image.Image],
               hrs: list[Image.Image] | None = None) -> None:
        s, protocol = self.s, self.s["protocol"]
        tests = prepare(tests, protocol, edited=True)
        refs = prepare(refs, protocol, edited=True)
        dtype = PRECISIONS[s["precision"]]
        values = pair_metrics(tests, refs, s, dtype, self.device)
        if hrs is not None:
            hrs = prepare(hrs, protocol, edited=False)
            for suffix, images in (("_hr", tests), ("_hr_reference", refs)):
                for name, column in pair_metrics(images, hrs, s, dtype, self.device).items():
                    if name in PAIR_METRICS:
                        values[f"{name}{suffix}"] = column
        if "clip_score" in self.wanted:
            prompts = [[r["prompt"]] for r in rows]
            values["clip_score"] = [v[0] for v in self.scorer.image_text_scores(tests, prompts)]
            values["clip_score_reference"] = [
                v[0] for v in self.scorer.image_text_scores(refs, prompts)]
        self._update_features(tests, refs)
        for i, row in enumerate(rows):
            self.table.append({**row, **{name: column[i] for name, column in values.items()}})

    def _update_features(self, tests: list[Image.Image], refs: list[Image.Image]) -> None:
        extract = self.extract
        if extract is None:
            return
        if "fid" in self.wanted:
            self.feats["test"].append(extract(extract.fid_module, tests))
            self.feats["ref"].append(extract(extract.fid_module, refs))
        if "is" in self.wanted:
            self.feats["test_logits"].append(extract(extract.is_module, tests))
            self.feats["ref_logits"].append(extract(extract.is_module, refs))

    def compute(self, dataset_dir: Path) -> dict:
        metrics = _sample_summaries(self.table, self.s, self.wanted)
        if self.extract is None:
            return metrics
        cat = {k: torch.cat(v) if v else None for k, v in self.feats.items()}
        clusters = {"edits": [row["sample_id"] for row in self.table]}
        if "fid" in self.wanted:
            samples = {row["sample_id"] for row in self.table}
            clusters["sources"], cat["sources"] = _source_features(
                dataset_dir, samples, self.extract, self.s["protocol"])
        for name, value in _set_metrics(cat, clusters, self.s, self.wanted,
                                        self.extract.descriptions).items():
            value["higher_is_better"] = HIGHER_IS_BETTER[name.split("_")[0]]
            metrics[name] = value
        return metrics


def evaluate(
    edits_dir: Path,
    reference_dir: Path,
    dataset_dir: Path,
    metrics_file: Path,
    table_file: Path,
    clip: ModelRef,
    settings: dict | None = None,
    labels: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    scorer: ClipScorer | None = None,
) -> dict:
    """Evaluate ``edits_dir`` against ``reference_dir``; write both files; return the summary.

    Read the inputs (checked), ``update`` the metrics batch by batch, ``compute`` them, write.
    ``scorer`` reuses a loaded :class:`ClipScorer` of ``clip`` (one per stage, not per set).
    """
    s = evaluate_settings(settings)
    edits_dir, reference_dir, dataset_dir = Path(edits_dir), Path(reference_dir), Path(dataset_dir)
    test, dataset_record = _check_inputs(edits_dir, reference_dir, dataset_dir, metrics_file)
    metrics = _new_metrics(s, clip, scorer)
    for rows, tests, refs, hrs in _batches(edits_dir, reference_dir, dataset_dir, s):
        metrics.update(rows, tests, refs, hrs)
        if progress is not None:
            progress(len(metrics.table), test["n"])
    near = Path(metrics_file)
    inputs = {"edits": folder_record(edits_dir, "edits", near),
              "reference_edits": folder_record(reference_dir, "reference_edits", near),
              "dataset": dataset_record, **upstream_records(test)}
    summary = {
        "protocol": s["protocol"],
        "labels": {**labels_for(test), "protocol": s["protocol"], **(labels or {})},
        "metrics": metrics.compute(dataset_dir),
        "table": portable_path(Path(table_file), near),
        "provenance": provenance(inputs, _models(test, clip, metrics.scorer),
                                 {"evaluate": s, "edit": test["params"],
                                  "defence": test.get("defence")}),
    }
    _write_table(Path(table_file), metrics.table, summary["provenance"])
    Path(metrics_file).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(metrics_file), summary)
    return summary


def _check_inputs(edits_dir: Path, reference_dir: Path, dataset_dir: Path,
                  metrics_file: Path) -> tuple[dict, dict]:
    """The edits' manifest and the dataset's record, once both sets are known comparable."""
    test = _edit_manifest(edits_dir, "edits")
    reference = _edit_manifest(reference_dir, "reference edits")
    check_comparable(test, reference)
    dataset_record = folder_record(dataset_dir, "dataset", near=Path(metrics_file))
    for name, manifest in (("edits", test), ("reference edits", reference)):
        recorded = manifest["inputs"]["dataset"]["dvc_hash"]
        if recorded != dataset_record["dvc_hash"]:
            raise LdmdataError(
                f"the {name} were made from a dataset with DVC hash {recorded}, but "
                f"{dataset_dir} hashes to {dataset_record['dvc_hash']}"
            )
    return test, dataset_record


def _new_metrics(s: dict, clip: ModelRef, scorer: ClipScorer | None) -> EditMetrics:
    """The metrics of one evaluation, with the CLIP scorer and FID/IS extractors they need."""
    wanted = set(s["metrics"])
    device = pick_device(s["device"])
    if s["threads"] is not None:
        torch.set_num_threads(s["threads"])
    features = choose_features(s["features"], s["inception_weights"]) \
        if wanted & {"fid", "is"} else None
    if ("clip_score" in wanted or features == "clip") and scorer is None:
        with quiet_loading():
            scorer = ClipScorer(clip, device=str(device))
    extract = _Features(features, scorer, s["inception_weights"]) if features else None
    return EditMetrics(s, device, scorer, extract)


EDIT_COLUMNS = ["id", "sample_id", "prompt_index", "attack_prompt_index", "prompt", "image"]


def _batches(edits_dir: Path, reference_dir: Path, dataset_dir: Path, s: dict):
    """``(rows, edits, reference edits, HR images or None)`` of ``s['batch_size']`` rows."""
    keys = [(r["sample_id"], r["prompt_index"]) for r in
            iter_rows(edits_dir, columns=["sample_id", "prompt_index"], decode_images=False)]
    if not keys:
        raise LdmdataError(f"{edits_dir} holds no edits")
    ref = _Reference(reference_dir, set(keys))
    hr = _HighRes(dataset_dir, {k[0] for k in keys})
    batch: list[dict] = []
    for row in iter_rows(edits_dir, columns=EDIT_COLUMNS):
        batch.append(row)
        if len(batch) >= s["batch_size"]:
            yield _pairs(batch, ref, hr)
            batch = []
    if batch:
        yield _pairs(batch, ref, hr)


def _pairs(batch: list[dict], ref: _Reference, hr: _HighRes):
    rows, tests, refs = [], [], []
    for row in batch:
        ref_id, image = ref.get((row["sample_id"], row["prompt_index"]))
        rows.append({**{k: row[k] for k in EDIT_COLUMNS if k != "image"},
                     "reference_id": ref_id})
        tests.append(row["image"])
        refs.append(image)
    hrs = hr.get([row["sample_id"] for row in batch])
    if hrs is not None and hrs[0].size != tests[0].size:
        raise LdmdataError(f"the upscaled edits are {tests[0].size} but the dataset's HR images "
                           f"are {hrs[0].size}; compare them at one size")
    return rows, tests, refs, hrs


class _HighRes:
    """An sr dataset's HR images by sample id (None for other datasets)."""

    def __init__(self, dataset_dir: Path, samples: set[str]):
        self.images: dict[str, bytes] | None = None
        if read_manifest(dataset_dir).get("kind") == "sr":
            self.images = {row["id"]: row["hr"]["bytes"] for row in
                           iter_rows(dataset_dir, columns=["id", "hr"], decode_images=False)
                           if row["id"] in samples}

    def get(self, samples: list[str]) -> list[Image.Image] | None:
        if self.images is None:
            return None
        return [Image.open(io.BytesIO(self.images[s])).convert("RGB") for s in samples]


def _models(test: dict, clip: ModelRef, scorer: ClipScorer | None) -> dict:
    """The models behind the numbers: editor, attacked model, defence model, CLIP."""
    models = {"editor": test["model"]}
    if test.get("attack") and test["attack"].get("model"):
        models["attack"] = test["attack"]["model"]
    if test.get("defence_model"):
        models["defence"] = test["defence_model"]
    if scorer is not None:
        models["clip"] = describe_model(clip)
    return models


def _source_features(dataset_dir: Path, samples: set[str], extract: _Features, protocol: str
                     ) -> tuple[list[str], torch.Tensor]:
    """Ids and features of the dataset's source images (``image``, or ``hr`` for sr) of
    ``samples``, prepared as ``protocol`` says (not edits: the study did not JPEG them)."""
    kind = read_manifest(dataset_dir)["kind"]
    column = "hr" if kind == "sr" else IMAGE_COLUMN[kind]
    ids, chunks, batch = [], [], []
    for row in iter_rows(dataset_dir, columns=["id", column]):
        if row["id"] in samples:
            ids.append(row["id"])
            batch.append(row[column].convert("RGB"))
        if len(batch) >= 16:
            chunks.append(extract(extract.fid_module, prepare(batch, protocol, edited=False)))
            batch = []
    if batch:
        chunks.append(extract(extract.fid_module, prepare(batch, protocol, edited=False)))
    return ids, torch.cat(chunks)


PSNR_INFINITE = "identical pairs give infinite PSNR (psnr_cap null)"


def _sample_summaries(table: list[dict], s: dict, wanted: set) -> dict:
    """Headline and cluster-bootstrap interval of each per-sample metric."""
    clusters = [row["sample_id"] for row in table]
    metrics: dict = {}
    for name in ("psnr", "ssim", "ms_ssim", "clip_score"):
        if name not in wanted:
            continue
        for column in _columns(name, table[0]):
            seed = derive_seed(s["seed"], column)
            if column == "psnr" and s["protocol"] == "study":
                summary = pooled_psnr([row["mse"] for row in table], clusters, s["psnr_cap"],
                                      s["bootstrap"], seed, s["confidence"])
                summary["statistic"] = "pooled"
                summary.setdefault("note", "PSNR of the MSE pooled over every pair (the "
                                           "study's); the table's psnr column is per pair")
            else:
                summary = cluster_mean([row[column] for row in table], clusters,
                                       s["bootstrap"], seed, s["confidence"])
                summary["statistic"] = "mean"
            summary["higher_is_better"] = HIGHER_IS_BETTER[name]
            metrics[column] = summary
    if "psnr" in metrics:
        cap = s["psnr_cap"]
        metrics["psnr"]["cap_db"] = cap
        metrics["psnr"]["n_capped"] = sum(
            1 for row in table if cap is not None and row["psnr"] >= cap)
        if metrics["psnr"]["n_infinite"] and s["protocol"] == "ldmdata":
            metrics["psnr"]["note"] += f": {PSNR_INFINITE}"
    if "ms_ssim" in metrics:
        metrics["ms_ssim"]["scales"] = sorted({row["ms_ssim_scales"] for row in table})
        metrics["ms_ssim"]["normalize"] = ssim_options(s)[1]
    return metrics


def _columns(name: str, row: dict) -> list[str]:
    """The table columns of metric ``name``: itself, the clean edits' CLIP score, and (sr)
    the comparisons with the HR images."""
    found = [name] + [f"{name}{suffix}" for suffix in ("_reference", "_hr", "_hr_reference")
                      if f"{name}{suffix}" in row]
    return found


def _write_table(path: Path, rows: list[dict], prov: dict) -> None:
    """Per-sample values as parquet; the provenance block rides in the schema metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    table = table.replace_schema_metadata({PARQUET_KEY: json.dumps(prov, sort_keys=True)})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
