"""Publishing a built dataset to the Hugging Face Hub: validate, stage the exact files, upload.

The staged folder is what the Hub repo will hold::

    data/train-00000.parquet ...   the dataset's shards, byte for byte
    manifest.json                  the dataset's manifest, byte for byte
    preview.png                    a small grid of the first samples (if it has image columns)
    README.md                      the dataset card (YAML metadata + provenance)

The token is read from huggingface_hub's usual places (``HF_TOKEN``, the stored login) and only
handed to :class:`huggingface_hub.HfApi`; it is never printed, logged or written.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import httpx2
import pyarrow.parquet as pq
from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from ldmdata.dataset import read_manifest, verify
from ldmdata.errors import LdmdataError
from ldmdata.provenance import dvc_hash
from ldmdata.publish.card import build_card
from ldmdata.publish.defaults import DEFAULT_LICENSE
from ldmdata.publish.preview import make_preview

PREVIEW_FILE = "preview.png"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
REPO_ID = re.compile(rf"{_NAME}/{_NAME}")
BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


@dataclass
class PublishResult:
    """What a publish did: the files staged (repo paths) and, unless dry, the commit made."""

    repo_id: str
    revision: str
    files: list[str] = field(default_factory=list)
    dry_run: bool = True
    commit_url: str | None = None


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid OWNER/NAME Hub id; LdmdataError otherwise."""
    if not REPO_ID.fullmatch(repo_id or ""):
        raise LdmdataError(
            f"repo id {repo_id!r} is not OWNER/NAME (letters, digits, '-', '_', '.')"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise LdmdataError(f"repo id {repo_id!r} is not valid on the Hub: {err}") from None
    return repo_id


def check_branch(revision: str) -> str:
    """``revision`` if it can name a branch of a Hub repo; LdmdataError otherwise."""
    bad = (
        not BRANCH.fullmatch(revision)
        or ".." in revision
        or "//" in revision
        or revision.endswith(("/", ".", ".lock"))
    )
    if bad:
        raise LdmdataError(f"revision {revision!r} is not a valid branch name")
    return revision


def _checked_manifest(dataset_dir: Path) -> dict:
    """The manifest of an intact dataset; LdmdataError naming the first problem otherwise."""
    if not Path(dataset_dir).is_dir():
        raise LdmdataError(f"{dataset_dir} is not a folder")
    manifest = read_manifest(dataset_dir)
    problems = verify(dataset_dir)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LdmdataError(
            f"{dataset_dir} fails verification: {problems[0]}{more}; rebuild it or run "
            f"`ldmdata verify {dataset_dir}`"
        )
    return manifest


def _schema_and_size(shards: list[Path], manifest: dict) -> tuple[datasets.Features, int]:
    """Features in the shards' column order, and the shards' uncompressed data size."""
    if not shards:
        return datasets.Features.from_dict(manifest["features"]), 0
    features = datasets.Features.from_arrow_schema(pq.read_schema(shards[0]))
    size = 0
    for path in shards:
        meta = pq.read_metadata(path)
        size += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return features, size


def stage(
    dataset_dir: Path,
    out_dir: Path,
    *,
    repo_id: str,
    license: str = DEFAULT_LICENSE,
    pretty_name: str | None = None,
    revision: str | None = None,
    manifest: dict | None = None,
) -> list[str]:
    """Write the exact upload files of ``dataset_dir`` into the empty folder ``out_dir``.

    Returns their repo paths, sorted. ``manifest`` skips re-reading it when already checked.
    """
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    manifest = manifest or _checked_manifest(dataset_dir)
    if out_dir.resolve().is_relative_to(dataset_dir.resolve()):
        raise LdmdataError(f"{out_dir} is inside the dataset folder; stage the files elsewhere")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise LdmdataError(f"{out_dir} must be a new or empty folder for the staged files")
    created = not out_dir.exists()
    try:
        return _write_staged(dataset_dir, out_dir, manifest, repo_id=repo_id, license=license,
                             pretty_name=pretty_name, revision=revision)
    except BaseException:
        if created:  # never leave half a dry run behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _write_staged(dataset_dir: Path, out_dir: Path, manifest: dict, **card_options) -> list[str]:
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    files = []
    for shard in manifest["shards"]:
        shutil.copyfile(dataset_dir / shard["file"], out_dir / shard["file"])
        files.append(shard["file"])
    shutil.copyfile(dataset_dir / "manifest.json", out_dir / "manifest.json")
    rows, columns = make_preview(dataset_dir, out_dir / PREVIEW_FILE)
    preview = [PREVIEW_FILE] if rows else []
    features, num_bytes = _schema_and_size([out_dir / f for f in files], manifest)
    card = build_card(
        manifest,
        features,
        dvc_hash=dvc_hash(dataset_dir),
        preview_file=PREVIEW_FILE if rows else None,
        preview_columns=columns,
        preview_rows=rows,
        num_bytes=num_bytes,
        download_size=sum((out_dir / f).stat().st_size for f in files),
        **card_options,
    )
    card.save(out_dir / "README.md")
    return sorted([*files, "manifest.json", *preview, "README.md"])


def _refuse_secret(staged: Path, files: list[str], token: str) -> None:
    """Stop before uploading if the token somehow sits in a staged text file."""
    for name in ("README.md", "manifest.json"):
        if name in files and token in (staged / name).read_text(encoding="utf-8"):
            raise LdmdataError(f"refusing to upload: {name} contains your Hub token")


def _hub_error(err: Exception, token: str, endpoint: str) -> LdmdataError:
    """One line for a failed Hub call, with the token scrubbed from anything quoted."""
    if isinstance(err, OfflineModeIsEnabled):
        text = "HF_HUB_OFFLINE is set; unset it to upload (or use --dry-run)"
    elif isinstance(err, httpx2.TransportError):
        text = f"cannot reach the Hugging Face Hub at {endpoint} ({type(err).__name__})"
    elif isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else "?"
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if status == 401:
            detail = "the token was rejected; run `hf auth login` or set HF_TOKEN"
        text = f"the Hub refused the upload (HTTP {status}): {detail}"
    else:
        text = f"upload failed: {type(err).__name__}"
    return LdmdataError(f"publish failed: {text.replace(token, '***')}")


def publish(
    dataset_dir: Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: Path | None = None,
    license: str = DEFAULT_LICENSE,
    pretty_name: str | None = None,
    api: HfApi | None = None,
) -> PublishResult:
    """Publish ``dataset_dir`` to the Hub dataset repo ``repo_id`` (or stage it into ``dry_run``).

    Checks run before anything is written or sent: the repo id, the branch name, the token and
    offline mode (unless dry), and ``ldmdata verify`` of the dataset. ``revision`` names the
    branch to commit to (created from main when missing); ``private`` applies when the repo is
    created and refuses to upload into an existing public repo.
    """
    check_repo_id(repo_id)
    if revision is not None:
        check_branch(revision)
    branch = revision or constants.DEFAULT_REVISION
    if dry_run is not None:
        manifest = _checked_manifest(Path(dataset_dir))
        files = stage(
            dataset_dir, dry_run, repo_id=repo_id, license=license, pretty_name=pretty_name,
            revision=revision, manifest=manifest,
        )
        return PublishResult(repo_id, branch, files, dry_run=True)

    if constants.is_offline_mode():
        raise LdmdataError("HF_HUB_OFFLINE is set; unset it to upload (or use --dry-run)")
    token = get_token()
    if not token:
        raise LdmdataError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    manifest = _checked_manifest(Path(dataset_dir))
    api = api or HfApi()
    with tempfile.TemporaryDirectory(prefix="ldmdata-publish-") as tmp:
        staged = Path(tmp) / "upload"
        files = stage(
            dataset_dir, staged, repo_id=repo_id, license=license, pretty_name=pretty_name,
            revision=revision, manifest=manifest,
        )
        _refuse_secret(staged, files, token)
        try:
            api.create_repo(
                repo_id, repo_type="dataset", private=private, exist_ok=True, token=token
            )
            if private and not api.dataset_info(repo_id, token=token).private:
                raise LdmdataError(
                    f"{repo_id} already exists and is public; --private does not change an "
                    "existing repo's visibility (change it on the Hub first)"
                )
            if branch != constants.DEFAULT_REVISION:
                api.create_branch(
                    repo_id, branch=branch, repo_type="dataset", exist_ok=True, token=token
                )
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=staged,
                repo_type="dataset",
                revision=branch,
                token=token,
                commit_message=(
                    f"ldmdata publish: {manifest['kind']}, {manifest['n']} rows, "
                    f"content_hash {manifest['content_hash'][:12]}"
                ),
                delete_patterns=["data/*"],  # stale shards of an earlier, larger version
            )
        except (OfflineModeIsEnabled, httpx2.TransportError, HfHubHTTPError) as err:
            raise _hub_error(err, token, api.endpoint) from None
    return PublishResult(repo_id, branch, files, dry_run=False, commit_url=commit.commit_url)
