"""Publishing to the Hub: staged files load with datasets, the card parses, errors are one line."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import httpx2
import huggingface_hub
import pytest
from datasets import Features, Image, List, Value
from huggingface_hub import DatasetCard, constants
from huggingface_hub.errors import HfHubHTTPError
from PIL import Image as PILImage

from helpers.cli import CliRunner, command
from ldmdata.dataset import ShardedWriter
from ldmdata.dataset.png import encode_png
from ldmdata.errors import LdmdataError
from ldmdata.provenance import dvc_hash
from ldmdata.publish import publish

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_fakeTokenThatMustNeverBeWritten0123"

KINDS = {
    "inpaint": Features({
        "id": Value("string"), "image": Image(), "mask": Image(), "caption": Value("string"),
        "prompts": List(Value("string")), "box": List(Value("int32")),
    }),
    "img2img": Features({
        "id": Value("string"), "image": Image(), "caption": Value("string"),
        "prompts": List(Value("string")),
    }),
    "sr": Features({
        "id": Value("string"), "hr": Image(), "lr": Image(), "scale": Value("int32"),
        "caption": Value("string"),
    }),
}


def make_row(kind: str, i: int) -> dict:
    image = PILImage.new("RGB", (32, 24), (40 * i % 256, 90, 200))
    row = {"id": f"s{i}", "caption": f"a red box {i}"}
    if kind == "inpaint":
        mask = PILImage.new("L", (32, 24), 0)
        mask.paste(255, (4, 4, 20, 16))
        row.update(image=encode_png(image), mask=encode_png(mask), prompts=[f"p{i}", "q"],
                   box=[4, 4, 20, 16])
    elif kind == "img2img":
        row.update(image=encode_png(image), prompts=[f"p{i}", "q"])
    else:
        row.update(hr=encode_png(image), lr=encode_png(image.resize((8, 6))), scale=4)
    return row


HUB_MODELS = [
    {"role": "captioner", "id": "Salesforce/blip-image-captioning-large", "revision": "0123abcd"},
    {"role": "clip", "id": "openai/clip-vit-base-patch16", "revision": "57c216476e"},
]


def make_dataset(folder: Path, kind: str = "inpaint", n: int = 5, shard_size: int = 2,
                 params: dict | None = None, models: list | None = None) -> dict:
    """A finished dataset with one reject, provenance keys as the builders write them."""
    with ShardedWriter(folder, kind=kind, features=KINDS[kind], config={"n": n},
                       shard_size=shard_size) as writer:
        for i in range(n):
            writer.add(make_row(kind, i), i + 1)
        writer.reject(n, "broken.jpg", "not an image")
        return writer.finish(n + 1, {
            "task": kind,
            "params": params or {"n": n, "seed": 0},
            "models": models or HUB_MODELS,
            "source": {"spec": "synthetic", "seed": 0},
            "code_version": {"ldmdata": "0.1.0", "git_commit": "feedface", "git_dirty": False},
            "n_requested": n + 1,
        })


class Calls(list):
    """The recorded Hub calls, as (method name, args, kwargs)."""

    state: SimpleNamespace


@pytest.fixture
def hub_calls(monkeypatch):
    """Replace every HfApi write call with a recorder; ``.state.public`` makes the repo public."""
    calls = Calls()
    state = SimpleNamespace(public=False)

    def recorder(name, result=None):
        def method(self, *args, **kwargs):
            calls.append((name, args, kwargs))
            return result(*args, **kwargs) if result else None
        return method

    def upload_folder(self, *args, **kwargs):
        folder = Path(kwargs["folder_path"])  # a temporary folder: list it while it exists
        kwargs["staged"] = sorted(p.relative_to(folder).as_posix()
                                  for p in folder.rglob("*") if p.is_file())
        calls.append(("upload_folder", args, kwargs))
        return SimpleNamespace(commit_url="https://huggingface.co/datasets/me/x/commit/abc")

    for name in ("create_repo", "create_branch", "create_commit", "upload_file",
                 "preupload_lfs_files", "delete_file", "delete_folder"):
        monkeypatch.setattr(huggingface_hub.HfApi, name, recorder(name))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", recorder(
        "dataset_info", lambda *a, **k: SimpleNamespace(private=not state.public)))
    calls.state = state
    return calls


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Hub mode on, a fake token in HF_TOKEN, no stored login."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)


app = command("publish")


def invoke(*args: str):
    return CliRunner().invoke(app, [*map(str, args)])


def all_text(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["inpaint", "img2img", "sr"])
def test_dry_run_loads_with_datasets_and_the_card_parses(tmp_path, kind):
    ds, out = tmp_path / "ds", tmp_path / "out"
    manifest = make_dataset(ds, kind, n=5, shard_size=2)
    result = publish(ds, "someone/ldm-bench", dry_run=out)
    expected = ["README.md", "data/train-00000.parquet", "data/train-00001.parquet",
                "data/train-00002.parquet", "manifest.json", "preview.png"]
    assert result.files == expected and result.dry_run and result.commit_url is None
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == expected
    for name in ["manifest.json", *expected[1:4]]:
        assert (out / name).read_bytes() == (ds / name).read_bytes()

    loaded = datasets.load_dataset(str(out))
    assert list(loaded) == ["train"]
    train = loaded["train"]
    assert train.num_rows == 5
    assert train.features == KINDS[kind]
    assert train["id"] == [f"s{i}" for i in range(5)]
    image_columns = [k for k, v in KINDS[kind].items() if isinstance(v, Image)]
    first = train[0]
    for column in image_columns:
        assert isinstance(first[column], PILImage.Image)
    if kind == "inpaint":
        assert first["mask"].mode == "L" and first["mask"].getpixel((10, 10)) == 255
    if kind == "sr":
        assert first["hr"].size == (32, 24) and first["lr"].size == (8, 6)

    card = DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0"
    assert "image-to-image" in data["task_categories"]
    assert data["size_categories"] == ["n<1K"]
    assert data["pretty_name"] == f"ldmdata {kind} robustness benchmark (5 samples)"
    assert data["configs"][0]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    assert [f["name"] for f in data["dataset_info"]["features"]] == list(KINDS[kind])
    assert data["dataset_info"]["splits"][0]["num_examples"] == 5
    for fact in (dvc_hash(ds), manifest["content_hash"], "Salesforce/blip-image-captioning-large",
                 "0123abcd", "not an image: 1", "feedface", "load_dataset(\"someone/ldm-bench\"",
                 "preview.png"):
        assert fact in card.text, fact

    with PILImage.open(out / "preview.png") as preview:  # 160 px tiles, 4 px gaps
        if kind == "img2img":  # one image per sample: 4 samples in a row
            assert preview.size == (4 * 164 + 4, 164 + 4)
        else:  # 4 samples in rows, image | mask or hr | lr
            assert preview.size == (2 * 164 + 4, 4 * 164 + 4)


def test_options_reach_the_card(tmp_path):
    ds, out = tmp_path / "ds", tmp_path / "out"
    make_dataset(ds, "sr", n=3)
    publish(ds, "someone/sr-bench", dry_run=out, license="mit", pretty_name="My SR set",
            revision="v2")
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "mit" and card.data.pretty_name == "My SR set"
    assert 'revision="v2"' in card.text and "super-resolution" in card.data.tags


def test_card_says_when_the_models_are_not_on_the_hub(tmp_path):
    make_dataset(tmp_path / "hub", n=2)
    make_dataset(tmp_path / "tiny", n=2, models=[
        {"role": "captioner", "id": "ldmdata-tiny/captioner", "revision": "sha256:ab"},
        {"role": "clip", "id": "openai/clip-vit-base-patch16", "revision": "57c216476e"},
    ])
    make_dataset(tmp_path / "local", n=2, models=[
        {"role": "clip", "id": "/models/my-clip", "revision": None}])
    for name in ("hub", "tiny", "local"):
        publish(tmp_path / name, "someone/bench", dry_run=tmp_path / f"out-{name}")
    hub_card = (tmp_path / "out-hub" / "README.md").read_text()
    assert "not on the Hub" not in hub_card and "tiny models" not in hub_card
    tiny_card = (tmp_path / "out-tiny" / "README.md").read_text()
    assert "made with ldmdata's tiny models" in tiny_card and "not a benchmark" in tiny_card
    local_card = (tmp_path / "out-local" / "README.md").read_text()
    assert "local model weights that are not on the Hub (clip)" in local_card


def test_card_reads_as_a_card(tmp_path):
    ds, out = tmp_path / "ds", tmp_path / "out"
    make_dataset(ds, "inpaint", n=2)
    publish(ds, "someone/bench", dry_run=out)
    card = (out / "README.md").read_text()
    assert "| `mask` | image (PNG) | inpainting mask, L PNG: 255 on the main entity" in card
    assert "| `box` | list of int32 | the entity's box in the output image: [x0, y0, x1, y1]" \
        in card
    assert "On the Robustness of Latent Diffusion Models" in card and "2306.08257" in card
    built = card.split("## How it was built")[1].split("Parameters:")[0]
    assert "source spec `synthetic`" in built and '{"' not in built
    assert "| code | ldmdata 0.1.0, git commit `feedface` |" in card


def test_a_dataset_without_images_gets_no_preview(tmp_path):
    ds, out = tmp_path / "ds", tmp_path / "out"
    features = Features({"id": Value("string"), "score": Value("float32")})
    with ShardedWriter(ds, kind="metrics", features=features, config={}) as writer:
        writer.add({"id": "a", "score": 0.5}, 1)
        writer.finish(1, {})
    assert publish(ds, "someone/scores", dry_run=out).files == [
        "README.md", "data/train-00000.parquet", "manifest.json"]
    assert "preview" not in (out / "README.md").read_text()
    assert datasets.load_dataset(str(out), split="train")["score"] == [0.5]


def test_cli_dry_run_uploads_nothing_and_never_writes_the_token(tmp_path, hub_calls, online):
    ds, out = tmp_path / "ds", tmp_path / "out"
    make_dataset(ds)
    result = invoke(ds, "--repo-id", "someone/bench", "--dry-run", out, "--private")
    assert result.exit_code == 0, result.output
    assert "nothing uploaded" in result.stdout and "data/train-00000.parquet" in result.stdout
    assert hub_calls == []
    assert TOKEN not in result.output
    assert TOKEN.encode() not in all_text(out) and TOKEN.encode() not in all_text(ds)


def test_upload_sends_the_staged_files_through_the_hub_api(tmp_path, hub_calls, online):
    ds, out = tmp_path / "ds", tmp_path / "out"
    make_dataset(ds)
    dry = publish(ds, "someone/bench", dry_run=out, revision="v2")
    result = invoke(ds, "--repo-id", "someone/bench", "--revision", "v2", "--private")
    assert result.exit_code == 0, result.output
    assert "someone/bench@v2" in result.stdout and "commit/abc" in result.stdout
    assert TOKEN not in result.output
    names = [name for name, _, _ in hub_calls]
    assert names == ["create_repo", "dataset_info", "create_branch", "upload_folder"]
    (_, args, create), _, (_, _, branch), (_, _, upload) = hub_calls
    assert args == ("someone/bench",)
    assert create["repo_type"] == "dataset" and create["private"] is True and create["exist_ok"]
    assert branch["branch"] == "v2" and branch["repo_type"] == "dataset"
    assert upload["repo_type"] == "dataset" and upload["revision"] == "v2"
    assert upload["staged"] == dry.files  # exactly what --dry-run writes
    assert upload["delete_patterns"] == ["data/*"]
    assert all(kwargs["token"] == TOKEN for _, _, kwargs in hub_calls)


def test_private_refuses_an_existing_public_repo(tmp_path, hub_calls, online):
    ds = tmp_path / "ds"
    make_dataset(ds)
    hub_calls.state.public = True
    result = invoke(ds, "--repo-id", "someone/bench", "--private")
    assert result.exit_code == 2
    assert "already exists and is public" in result.stderr
    assert "upload_folder" not in [name for name, _, _ in hub_calls]


def test_default_branch_is_main_without_create_branch(tmp_path, hub_calls, online):
    ds = tmp_path / "ds"
    make_dataset(ds)
    result = publish(ds, "someone/bench")
    assert result.revision == "main" and not result.dry_run
    assert [name for name, _, _ in hub_calls] == ["create_repo", "upload_folder"]
    assert hub_calls[-1][2]["revision"] == "main"


def _tamper_shard(ds: Path) -> None:
    shard = ds / "data" / "train-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))


def _tamper_manifest(ds: Path) -> None:
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["n"] += 1
    (ds / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("case, args, message", [
    ("bad repo id", ["{ds}", "--repo-id", "no-owner"], "is not OWNER/NAME"),
    ("bad repo id", ["{ds}", "--repo-id", "a/b/c"], "is not OWNER/NAME"),
    ("bad repo id", ["{ds}", "--repo-id", "owner/na me"], "is not OWNER/NAME"),
    ("bad repo id", ["{ds}", "--repo-id", "owner/x--y"], "not valid on the Hub"),
    ("bad branch", ["{ds}", "--repo-id", "o/n", "--revision", "a..b"], "not a valid branch"),
    ("not a dataset", ["{tmp}/empty", "--repo-id", "o/n"], "not a finished ldmdata dataset"),
    ("missing folder", ["{tmp}/nowhere", "--repo-id", "o/n"], "is not a folder"),
    ("tampered shard", ["{ds}", "--repo-id", "o/n"], "fails verification"),
    ("tampered manifest", ["{ds}", "--repo-id", "o/n"], "fails verification"),
])
@pytest.mark.parametrize("dry", [False, True])
def test_bad_input_is_one_line_exit_2_and_nothing_uploaded(tmp_path, hub_calls, online, case,
                                                          args, message, dry):
    ds = tmp_path / "ds"
    make_dataset(ds, n=4)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    if case == "tampered shard":
        _tamper_shard(ds)
    if case == "tampered manifest":
        _tamper_manifest(ds)
    args = [a.format(ds=ds, tmp=tmp_path) for a in args]
    out = tmp_path / "out"
    result = invoke(*args, *(["--dry-run", out] if dry else []))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert hub_calls == [] and not out.exists()
    assert TOKEN not in result.output


def test_dry_run_refuses_a_folder_that_is_not_empty(tmp_path, hub_calls):
    ds, out = tmp_path / "ds", tmp_path / "out"
    make_dataset(ds)
    out.mkdir()
    (out / "old.txt").write_text("x")
    result = invoke(ds, "--repo-id", "o/n", "--dry-run", out)
    assert result.exit_code == 2 and "new or empty folder" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


def test_dry_run_refuses_a_folder_inside_the_dataset(tmp_path, hub_calls):
    ds = tmp_path / "ds"
    make_dataset(ds)
    before = dvc_hash(ds)
    result = invoke(ds, "--repo-id", "o/n", "--dry-run", ds / "hub")
    assert result.exit_code == 2 and "inside the dataset folder" in result.stderr
    assert dvc_hash(ds) == before


def test_no_token_is_one_line_and_nothing_uploaded(tmp_path, hub_calls, online, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    ds = tmp_path / "ds"
    make_dataset(ds)
    result = invoke(ds, "--repo-id", "someone/bench")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    assert hub_calls == []


def test_offline_mode_is_one_line_and_nothing_uploaded(tmp_path, hub_calls, online, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    ds = tmp_path / "ds"
    make_dataset(ds)
    result = invoke(ds, "--repo-id", "someone/bench")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: HF_HUB_OFFLINE is set; unset it to upload (or use --dry-run)"]
    assert hub_calls == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_hub_with_stored_login_is_one_line(tmp_path, online, monkeypatch):
    """The real huggingface_hub client against a closed local port, token from the login file."""
    monkeypatch.delenv("HF_TOKEN")
    stored = tmp_path / "stored_token"
    stored.write_text(TOKEN)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(stored))
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    ds = tmp_path / "ds"
    make_dataset(ds)
    result = invoke(ds, "--repo-id", "someone/bench")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: publish failed: cannot reach the Hugging Face Hub at {endpoint} "
                     "(ConnectError)"]
    assert TOKEN not in result.output


def test_hub_http_errors_are_one_line_without_the_token(tmp_path, hub_calls, online, monkeypatch):
    def refuse(self, *args, **kwargs):
        request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
        response = httpx2.Response(403, request=request)
        raise HfHubHTTPError(f"403 Forbidden: token {TOKEN} may not write\nmore", response=response)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    ds = tmp_path / "ds"
    make_dataset(ds)
    result = invoke(ds, "--repo-id", "someone/bench")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the Hub refused the upload (HTTP 403)" in lines[0]
    assert TOKEN not in result.output and "***" in lines[0]
    assert hub_calls == []


def test_a_token_inside_the_dataset_is_never_uploaded(tmp_path, hub_calls, online):
    ds = tmp_path / "ds"
    make_dataset(ds, params={"n": 5, "source_token": TOKEN})
    with pytest.raises(LdmdataError, match="contains your Hub token"):
        publish(ds, "someone/bench")
    assert hub_calls == []


@pytest.mark.slow
def test_publish_stage_script_reads_params_and_fails_in_one_line(tmp_path):
    ds = tmp_path / "ds"
    make_dataset(ds)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": TOKEN}
    script = ROOT / "stages" / "publish.py"

    def run(params: str):
        (tmp_path / "params.yaml").write_text(params)
        return subprocess.run([sys.executable, str(script), str(ds)], cwd=tmp_path, env=env,
                              capture_output=True, text=True)

    unset = run("publish:\n  private: true\n")
    assert unset.returncode == 2
    assert unset.stderr.strip() == (
        "error: params.yaml publish.repo_id is not set (OWNER/NAME on the Hub)")
    offline = run("publish:\n  repo_id: me/x\n")
    assert offline.returncode == 2
    assert offline.stderr.strip().splitlines() == [
        "error: HF_HUB_OFFLINE is set; unset it to upload (or use --dry-run)"]
    assert TOKEN not in offline.stdout + offline.stderr
