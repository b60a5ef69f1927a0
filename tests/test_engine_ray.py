"""``--engine ray`` on a local Ray with 2 CPUs: same bytes as local, resume, retries, bad setups.

Light on purpose: the tiny models, 64 px, 2 attack iterations, 2 images x 2 prompts.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers.attack_data import make_dataset
from helpers.cli import command
from ldmdata.attacks import runner
from ldmdata.attacks.runner import RunOptions, attack, attack_from_params
from ldmdata.builders import build_dataset
from ldmdata.defend import DefendOptions, defend
from ldmdata.edit import EditOptions, edit
from ldmdata.edit.plan import edit_from_params
from ldmdata.engine import Engine
from ldmdata.errors import LdmdataError

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

KWARGS = dict(method="photoguard-encoder", overrides={"iterations": 2})
FAST_EDIT = {"num_inference_steps": 2}
TESTS = Path(__file__).parent
ROOT = TESTS.parent


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray (2 CPUs) for the module; its workers import ldmdata and these tests."""
    path = os.pathsep.join([str(ROOT / "toolkit"), str(TESTS), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("engine") / "img2img", "img2img")


def run(dataset, out, tiny_dir, engine=Engine(), progress=None, **options):
    options = RunOptions(batch_size=1, threads=1, engine=engine, **options)
    return attack(dataset, out, tiny_dir=tiny_dir, options=options, progress=progress, **KWARGS)


def ray_engine(workers: int = 2) -> Engine:
    return Engine("ray", workers=workers)


def test_ray_gives_the_bytes_of_local_on_1_and_2_workers(dataset, tmp_path, tiny_dir):
    local = run(dataset, tmp_path / "local", tiny_dir)
    for workers in (1, 2):
        remote = run(dataset, tmp_path / f"ray{workers}", tiny_dir, ray_engine(workers))
        assert remote["n"] == local["n"] == 4
        assert remote["content_hash"] == local["content_hash"]
        assert remote["config"] == local["config"]
        assert remote["runtime"]["engine"] == "ray" and remote["runtime"]["workers"] == workers
    assert local["runtime"]["engine"] == "local"


def test_edit_and_defend_on_ray_give_the_bytes_of_local(dataset, tmp_path, tiny_dir):
    # batch_size 3 splits sample s1's prompts over two batches (two workers): each worker
    # must defend s1's image exactly as the local run does
    edits = {}
    for name, engine in (("local", Engine()), ("ray", ray_engine())):
        options = EditOptions(batch_size=3, device="cpu", threads=1, engine=engine)
        edits[name] = edit(dataset, tmp_path / f"edit-{name}", overrides=FAST_EDIT,
                           defence="blur:sigma=1", tiny_dir=tiny_dir, options=options)
    assert edits["ray"]["n"] == edits["local"]["n"] == 4
    assert edits["ray"]["content_hash"] == edits["local"]["content_hash"]
    assert edits["ray"]["config"] == edits["local"]["config"]
    defended = {}
    for name, engine in (("local", Engine()), ("ray", ray_engine())):
        defended[name] = defend(dataset, tmp_path / f"defend-{name}", "jpeg:quality=40",
                                options=DefendOptions(batch_size=1, engine=engine))
    assert defended["ray"]["n"] == defended["local"]["n"] == 2
    assert defended["ray"]["content_hash"] == defended["local"]["content_hash"]
    assert defended["ray"]["runtime"]["engine"] == "ray"


def test_build_on_ray_gives_the_bytes_of_local(tmp_path, tiny_dir):
    # batches of 3 straddle the 4-row shards: each shard restarts the input batches at its
    # cursor, on Ray as in one process
    settings = {"size": 64, "shard_size": 4, "batch_size": 3, "n": 6}
    local = build_dataset("inpaint", tmp_path / "local", settings, tiny_dir=tiny_dir)
    remote = build_dataset("inpaint", tmp_path / "ray", {**settings, "engine": "ray",
                                                         "ray_workers": 2}, tiny_dir=tiny_dir)
    assert remote["n"] == local["n"] == 6
    assert remote["content_hash"] == local["content_hash"]
    assert remote["config"] == local["config"]
    assert (tmp_path / "ray" / "rejects.jsonl").read_text() == (
        tmp_path / "local" / "rejects.jsonl").read_text()
    # the same files, so DVC records the same outs for a stage run either way
    for name in ("manifest.json", "data/train-00000.parquet", "data/train-00001.parquet"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_an_interrupted_ray_run_resumes_from_its_shards(dataset, tmp_path, tiny_dir):
    reference = run(dataset, tmp_path / "ref", tiny_dir)

    def interrupt(done, total):
        if done == 2:  # the first shard (2 pairs) is committed
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(dataset, out, tiny_dir, ray_engine(), progress=interrupt, shard_size=2)
    assert (out / "data" / "train-00000.parquet").exists()
    assert not (out / "manifest.json").exists()
    seen = []
    resumed = run(dataset, out, tiny_dir, ray_engine(), progress=lambda d, t: seen.append(d),
                  shard_size=2)
    assert seen == [3, 4]  # only the second shard's batches ran again
    assert resumed["content_hash"] == reference["content_hash"]
    # the engine is no part of the output's identity: local resumes a ray run too
    with pytest.raises(KeyboardInterrupt):
        run(dataset, tmp_path / "mixed", tiny_dir, ray_engine(), progress=interrupt,
            shard_size=2)
    mixed = run(dataset, tmp_path / "mixed", tiny_dir, shard_size=2)
    assert mixed["content_hash"] == reference["content_hash"]


MARKER = "LDMDATA_TEST_KILL_MARKER"


def killing_attack_batch(worker, batch):
    """Kill this worker's process on the first call of the run (once, by a marker file)."""
    marker = Path(os.environ[MARKER])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return runner.attack_batch(worker, batch)


def test_a_killed_worker_is_retried_and_the_result_is_unchanged(dataset, tmp_path, tiny_dir,
                                                                 monkeypatch):
    reference = run(dataset, tmp_path / "ref", tiny_dir)
    marker = tmp_path / "killed"
    # the workers read the marker's path from the job's environment
    ray.shutdown()
    path = os.pathsep.join([str(ROOT / "toolkit"), str(TESTS), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1",
                                       MARKER: str(marker)}})
    monkeypatch.setattr(runner, "attack_batch", killing_attack_batch)
    result = run(dataset, tmp_path / "out", tiny_dir, ray_engine())
    assert marker.exists() and int(marker.read_text()) != os.getpid()
    assert result["content_hash"] == reference["content_hash"]


def cli(*args):
    return CliRunner().invoke(command("attack"), [str(a) for a in args])


def test_more_gpus_than_the_cluster_has_is_one_line_and_exit_2(dataset, tmp_path, tiny_dir):
    out = tmp_path / "out"
    result = cli(dataset, "--out", out, "--method", "photoguard-encoder", "--tiny-dir", tiny_dir,
                 "--target-image", "gray", "--engine", "ray", "--workers", 2,
                 "--gpus-per-worker", 1)
    assert result.exit_code == 2
    assert result.output.strip() == ("error: 2 workers with 1 GPU each need 2 GPUs; "
                                     "the Ray cluster has 0")
    assert not out.exists()


def test_ray_not_installed_is_one_line_and_exit_2(dataset, tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec("ray") is None: not installed
    out = tmp_path / "out"
    result = cli(dataset, "--out", out, "--method", "photoguard-encoder", "--tiny-dir", tiny_dir,
                 "--engine", "ray")
    assert result.exit_code == 2
    assert result.output.strip() == "error: --engine ray needs Ray: pip install 'ldmdata[ray]'"
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--engine", "spark"], "error: unknown engine 'spark'; choose one of: local, ray"),
    (["--engine", "ray", "--workers", "0"], "error: workers must be an integer >= 1, got 0"),
])
def test_bad_engine_options_are_one_line_and_exit_2(dataset, tmp_path, tiny_dir, args, message):
    out = tmp_path / "out"
    result = cli(dataset, "--out", out, "--method", "photoguard-encoder", "--tiny-dir", tiny_dir,
                 *args)
    assert result.exit_code == 2 and result.output.strip() == message
    assert not out.exists()


def test_an_unreachable_address_is_one_line_and_exit_2(dataset, tmp_path, tiny_dir):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "toolkit")}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, "-m", "ldmdata.cli", "attack", str(dataset), "--out", str(out),
         "--method", "photoguard-encoder", "--tiny-dir", str(tiny_dir), "--engine", "ray",
         "--ray-address", "127.0.0.1:9"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach a Ray cluster at "
                                                   "127.0.0.1:9")
    assert not out.exists()


def test_the_stages_read_the_engine_from_their_params(dataset, tmp_path, tiny_dir):
    # the test cluster has 2 CPUs: asking 3 workers proves the engine keys reach the engine
    message = "3 workers need a CPU each; the Ray cluster has 2"
    with pytest.raises(LdmdataError, match=message):
        attack_from_params(dataset, tmp_path / "attack", "photoguard-encoder",
                           {"attack": {"engine": "ray", "workers": 3}}, tiny_dir)
    with pytest.raises(LdmdataError, match=message):
        edit_from_params("img2img", dataset, tmp_path / "none", tmp_path / "edits",
                         {"attack": {}, "edit": {"engine": "ray", "workers": 3}}, tiny_dir)
    with pytest.raises(LdmdataError, match=message):
        build_dataset("img2img", tmp_path / "build", {"n": 2, "size": 64, "engine": "ray",
                                                      "ray_workers": 3}, tiny_dir=tiny_dir)
    assert not any((tmp_path / name).exists() for name in ("attack", "build"))
    assert not any((tmp_path / "edits").rglob("*.parquet"))
