"""An input folder whose manifest is corrupt, or that holds foreign parquet files, is refused
by attack, defend and edit with one line and exit 2, before any model loads."""

import json
import shutil

import pytest

from helpers.attack_data import make_dataset
from helpers.cli import CliRunner, command


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("bad_inputs") / "ds", "img2img", n=2)


def damaged(dataset, tmp_path, how: str):
    folder = tmp_path / "input"
    shutil.copytree(dataset, folder)
    manifest = folder / "manifest.json"
    if how == "foreign parquet":
        shutil.copy(folder / "data" / "train-00000.parquet", folder / "data" / "extra.parquet")
    elif how == "missing shard":
        (folder / "data" / "train-00000.parquet").unlink()
    elif how == "manifest without keys":
        data = json.loads(manifest.read_text())
        del data["shards"]
        manifest.write_text(json.dumps(data))
    else:
        manifest.write_text("{not json")
    return folder


@pytest.mark.parametrize("how,message", [
    ("foreign parquet", "not listed in its manifest"),
    ("missing shard", "is missing"),
    ("manifest without keys", "manifest.json is corrupt"),
    ("not json", "is not valid JSON"),
])
@pytest.mark.parametrize("name,extra", [
    ("attack", ["--target", "vae.encoder"]),
    ("defend", ["--defence", "jpeg"]),
    ("edit", []),
])
def test_damaged_input_is_refused_before_any_model_loads(dataset, tmp_path, monkeypatch, how,
                                                          message, name, extra):
    import ldmdata.models.editors as editors

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded for a damaged input")

    monkeypatch.setattr(editors, "load_pipeline", no_model)
    folder = damaged(dataset, tmp_path, how)
    result = CliRunner().invoke(command(name), [str(folder), "--out", str(tmp_path / "out"),
                                                *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "out").exists()
