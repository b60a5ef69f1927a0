"""The engine switch without a cluster: the local engine, devices, checks (Ray: test_engine_ray)."""

import pytest

from ldmdata.engine import Engine, _check_resources, run_batches
from ldmdata.errors import LdmdataError


def test_local_builds_one_worker_and_returns_results_in_order():
    made = []

    def make_worker():
        made.append(object())
        return {"offset": 10}

    results = list(run_batches(Engine(), [3, 1, 2], make_worker, lambda w, b: w["offset"] + b))
    assert results == [13, 11, 12] and len(made) == 1
    assert list(run_batches(Engine(), [], make_worker, lambda w, b: b)) == [] and len(made) == 1


@pytest.mark.parametrize("engine,device,expected", [
    (Engine(), "auto", "auto"),
    (Engine(), "cuda:1", "cuda:1"),
    (Engine("ray"), "auto", "cpu"),
    (Engine("ray", gpus_per_worker=1), "auto", "cuda"),
    (Engine("ray", gpus_per_worker=0.5), "cuda:3", "cuda"),  # the actor sees its GPU as 0
    (Engine("ray", gpus_per_worker=1), "cpu", "cpu"),
])
def test_the_worker_device(engine, device, expected):
    assert engine.worker_device(device) == expected


def test_a_gpu_device_on_cpu_workers_is_refused():
    with pytest.raises(LdmdataError, match="device cuda on Ray needs --gpus-per-worker > 0"):
        Engine("ray").worker_device("cuda")


@pytest.mark.parametrize("engine,message", [
    (Engine("spark"), "unknown engine 'spark'; choose one of: local, ray"),
    (Engine("ray", workers=0), "workers must be an integer >= 1, got 0"),
    (Engine("ray", workers=True), "workers must be an integer >= 1, got True"),
    (Engine("ray", gpus_per_worker=-1), "gpus_per_worker must be a number >= 0, got -1"),
])
def test_bad_values_are_one_line(engine, message):
    with pytest.raises(LdmdataError) as err:
        engine.check()
    assert str(err.value) == message


def test_the_cluster_must_hold_the_workers():
    _check_resources({"CPU": 16, "GPU": 8}, Engine("ray", workers=8, gpus_per_worker=1))
    with pytest.raises(LdmdataError, match="4 workers with 2.5 GPU each need 10 GPUs; the Ray "
                                           "cluster has 8"):
        _check_resources({"CPU": 16, "GPU": 8}, Engine("ray", workers=4, gpus_per_worker=2.5))
    with pytest.raises(LdmdataError, match="3 workers need a CPU each; the Ray cluster has 2"):
        _check_resources({"CPU": 2}, Engine("ray", workers=3))


def test_the_runtime_record():
    assert Engine().record() == {"engine": "local"}
    assert Engine("ray", workers=2, gpus_per_worker=1).record() == {
        "engine": "ray", "workers": 2, "gpus_per_worker": 1}
