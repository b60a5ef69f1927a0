"""The dataset card (README.md) of a published dataset: Hub YAML metadata plus a provenance body."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ldmdata.publish.defaults import DEFAULT_LICENSE

TINY_PREFIX = "ldmdata-tiny/"  # model ids the build records for the offline tiny set

TASK_CATEGORIES = {
    "inpaint": ["image-to-image", "image-segmentation"],
    "img2img": ["image-to-image"],
    "sr": ["image-to-image"],
}
KIND_TAGS = {"inpaint": "inpainting", "img2img": "image-variation", "sr": "super-resolution"}
KIND_TEXT = {
    "inpaint": "image + mask + edit prompts, for text-guided inpainting",
    "img2img": "image + edit prompts, for prompt-guided image-to-image editing",
    "sr": "high-resolution image + degraded low-resolution input, for diffusion super-resolution",
}

# What each column means, for the card's column table (columns not listed show their type only).
COLUMN_MEANINGS = {
    "id": "row id, stable across versions built with the same settings",
    "source_id": "the input this row was made from (file name, COCO id, synthetic index, ...)",
    "image": "the image to edit (RGB PNG)",
    "mask": "inpainting mask, L PNG: 255 on the main entity (kept), 0 elsewhere; the study "
            "inverts it at edit time so the model repaints the background",
    "caption": "the best caption (source captions ranked by CLIP score, or the captioner's)",
    "captions": "the captions kept, best first",
    "entity": "the main entity's name (a source label or a noun phrase of the caption)",
    "box": "the entity's box in the output image: [x0, y0, x1, y1] in pixels",
    "crop_box": "the crop taken from the source image: [left, top, right, bottom] in pixels",
    "mask_fraction": "fraction of the image the mask covers",
    "gt_iou": "IoU of the mask with the source's exact mask, where the source has one "
              "(synthetic scenes, COCO); empty otherwise",
    "prompts": "edit prompts, best first (CLIP score against the image)",
    "prompt_clip_scores": "CLIP score of each prompt against the image",
    "width": "image width in pixels",
    "height": "image height in pixels",
    "hr": "the high-resolution image (RGB PNG)",
    "lr": "the degraded low-resolution input (RGB PNG)",
    "scale": "HR side / LR side",
    "degradation": "JSON of every parameter drawn to degrade HR into LR",
}

CITATION = """@article{zhang2023robustness,
  title   = {On the Robustness of Latent Diffusion Models},
  author  = {Zhang, Jianping and Xu, Zhuoer and Cui, Shiwen and Meng, Changhua and Wu, Weibin
             and Lyu, Michael R.},
  journal = {arXiv preprint arXiv:2306.08257},
  year    = {2023}
}"""

_SIZE_BUCKETS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
]

TEMPLATE = """---
{{ card_data }}
---

# {{ pretty_name }}

Benchmark dataset of kind **{{ kind }}** ({{ kind_text }}), for measuring how robust
latent-diffusion image editing is against adversarial perturbations.
Built with ldmdata {{ ldmdata_version }}.
{% if tiny %}
> **This dataset was made with ldmdata's tiny models**: small random-weight networks for offline
> tests. Its model captions, prompt scores, boxes and masks are noise; it is not a benchmark.
> Rebuild with the real models (`--profile real`) for one.
{% elif local_models %}
> **Note:** built with local model weights that are not on the Hub ({{ local_models }}).
{% endif %}{% if preview_file %}
![preview: {{ preview_columns }}]({{ preview_file }})

*Preview: the first {{ preview_rows }} samples, columns {{ preview_columns }}.*
{% endif %}
## Contents

- **{{ n }}** samples, one split (`{{ split }}`), {{ n_shards }} parquet shard(s) under `data/`.
- Requested: {{ n_requested }}{% if exhausted %} (the source ran out first){% endif %};
  rejected inputs: {{ rejects_count }}.

| column | type | meaning |
|---|---|---|
{% for name, dtype, meaning in columns %}| `{{ name }}` | {{ dtype }} | {{ meaning }} |
{% endfor %}
## How it was built

{{ source_text }}

| role | model id | revision |
|---|---|---|
{% for m in models %}| {{ m.role }} | `{{ m.id }}` | {{ m.revision or "(none)" }} |
{% endfor %}{% if not models %}| (none recorded) | | |
{% endif %}
Parameters:

```json
{{ params }}
```

Rejected inputs by reason:

{% for reason, count in rejects %}- {{ reason }}: {{ count }}
{% endfor %}{% if not rejects %}- none
{% endif %}
## Provenance

| | |
|---|---|
| DVC hash (md5 of the dataset folder, as in `dvc.lock`) | `{{ dvc_hash }}` |
| content hash (sha256 over the rows, independent of sharding) | `{{ content_hash }}` |
| code | {{ code_text }} |

`manifest.json` in this repo holds the full record: features, per-shard sha256, params, models,
source and reject counts. `ldmdata verify` re-checks a downloaded copy against it.

## Loading

```python
from datasets import load_dataset

ds = load_dataset("{{ repo_id }}", split="{{ split }}"{{ revision_arg }})
{{ first_image_line }}
```

Source images keep the terms of their origin ({{ source_spec }}); the card's license covers
the annotations, masks and prompts added here.

## Citation

Built with ldmdata, which grows out of this study; please cite it:

```bibtex
{{ citation }}
```
"""


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    for limit, label in _SIZE_BUCKETS:
        if n < limit:
            return label
    return "n>10M"


def _dtype_text(feature) -> str:
    if isinstance(feature, datasets.Image):
        return "image (PNG)"
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, datasets.List | datasets.LargeList):
        return f"list of {_dtype_text(feature.feature)}"
    if isinstance(feature, dict):
        return "struct {" + ", ".join(f"{k}: {_dtype_text(v)}" for k, v in feature.items()) + "}"
    return type(feature).__name__


def source_sentence(source) -> str:
    """The source as a sentence, e.g. 'Images from the folder `photos/` (170 images).'"""
    if not isinstance(source, dict):
        return f"Images from `{source}`." if source else "The source was not recorded."
    kinds = {"synthetic": "procedural synthetic scenes (exact masks and captions)",
             "folder": f"the folder `{source.get('path')}`",
             "coco": f"COCO (split `{source.get('split')}`, images in "
                     f"`{source.get('images_dir')}`)",
             "hf": f"the Hugging Face dataset `{source.get('name')}` (split "
                   f"`{source.get('split')}`)"}
    what = kinds.get(source.get("kind"), f"`{source.get('spec')}`")
    count = f" ({source['count']} inputs)" if source.get("count") else ""
    return f"Images from {what}{count}, source spec `{source.get('spec')}`."


def code_sentence(code: dict) -> str:
    """The code version as a sentence."""
    text = f"ldmdata {code.get('ldmdata', '(unknown version)')}"
    if code.get("git_commit"):
        text += f", git commit `{code['git_commit']}`"
        text += " with uncommitted changes" if code.get("git_dirty") else ""
    return text


def _off_hub(model_id: str) -> bool:
    """True for ldmdata's tiny set and local folders: weights nobody can fetch from the Hub."""
    return model_id.startswith(TINY_PREFIX) or Path(model_id).is_absolute()


def card_data(
    manifest: dict,
    features: datasets.Features,
    *,
    license: str,
    pretty_name: str,
    num_bytes: int,
    download_size: int,
) -> DatasetCardData:
    """The YAML header: license, task categories, size, pretty name, configs and features."""
    kind = manifest["kind"]
    data = DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        task_categories=TASK_CATEGORIES.get(kind, ["image-to-image"]),
        size_categories=[size_category(manifest["n"])],
        tags=["ldmdata", "adversarial-robustness", "latent-diffusion", KIND_TAGS.get(kind, kind)],
    )
    split = manifest["split"]
    splits = SplitDict()
    splits.add(SplitInfo(name=split, num_bytes=num_bytes, num_examples=manifest["n"]))
    info = DatasetInfo(
        features=features, splits=splits, download_size=download_size, dataset_size=num_bytes
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    configs = {"default": {"data_files": [{"split": split, "path": f"data/{split}-*"}]}}
    MetadataConfigs(configs).to_dataset_card_data(data)
    return data


def build_card(
    manifest: dict,
    features: datasets.Features,
    *,
    repo_id: str,
    dvc_hash: str,
    preview_file: str | None,
    preview_columns: list[str],
    preview_rows: int,
    num_bytes: int,
    download_size: int,
    license: str = DEFAULT_LICENSE,
    pretty_name: str | None = None,
    revision: str | None = None,
) -> DatasetCard:
    """The dataset card for ``manifest`` as it will be published under ``repo_id``.

    ``features`` in column order (the manifest's are key-sorted); ``num_bytes`` and
    ``download_size`` are the uncompressed and the parquet sizes of the shards.
    """
    kind = manifest["kind"]
    pretty_name = pretty_name or f"ldmdata {kind} robustness benchmark ({manifest['n']} samples)"
    models = manifest.get("models") or []
    local = sorted({m["role"] for m in models if _off_hub(str(m.get("id", "")))})
    image_columns = [k for k, v in features.items() if isinstance(v, datasets.Image)]
    first_image = (
        f'ds[0]["{image_columns[0]}"]  # a PIL image' if image_columns else "ds[0]"
    )
    code = manifest.get("code_version") or {}
    return DatasetCard.from_template(
        card_data(
            manifest,
            features,
            license=license,
            pretty_name=pretty_name,
            num_bytes=num_bytes,
            download_size=download_size,
        ),
        template_str=TEMPLATE,
        pretty_name=pretty_name,
        kind=kind,
        kind_text=KIND_TEXT.get(kind, kind),
        ldmdata_version=code.get("ldmdata", "(unknown version)"),
        local_models=", ".join(local),
        tiny=any(str(m.get("id", "")).startswith(TINY_PREFIX) for m in models),
        preview_file=preview_file,
        preview_columns=" | ".join(preview_columns),
        preview_rows=preview_rows,
        n=manifest["n"],
        split=manifest["split"],
        n_shards=len(manifest["shards"]),
        n_requested=manifest.get("n_requested", manifest["n"]),
        exhausted=manifest.get("exhausted", False),
        rejects_count=manifest["rejects"]["count"],
        rejects=sorted(manifest["rejects"]["by_reason"].items()),
        columns=[(name, _dtype_text(f), COLUMN_MEANINGS.get(name, ""))
                 for name, f in features.items()],
        source_text=source_sentence(manifest.get("source")),
        source_spec=f"`{(manifest.get('source') or {}).get('spec', manifest.get('source'))}`"
        if isinstance(manifest.get("source"), dict) else f"`{manifest.get('source')}`",
        models=models,
        params=json.dumps(manifest.get("params", manifest.get("config")), indent=2, sort_keys=True),
        dvc_hash=dvc_hash,
        content_hash=manifest["content_hash"],
        code_text=code_sentence(code),
        citation=CITATION,
        repo_id=repo_id,
        revision_arg=f', revision="{revision}"' if revision else "",
        first_image_line=first_image,
    )
