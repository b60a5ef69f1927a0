"""Where a stage's batches run: in this process (``local``) or on a Ray cluster (``ray``).

A stage lists the batches it still has to do (from its writer's cursor), in order, and hands
:func:`run_batches` a picklable worker factory (loads the models once per worker) and a
per-batch function; it gets the results back in the same order and writes them itself, so
the output is the same bytes on either engine. ``local`` runs the batches one by one here.
``ray`` runs them with Ray Data: ``map_batches`` over an actor pool (``workers`` actors with
``gpus_per_worker`` GPUs each, each building its worker once), ``preserve_order`` on, Ray's own
back-pressure, actor restarts and task retries (a killed worker's batch is run again).
Ray is imported only here and only for ``ray``. Use :func:`connect` around the run: it starts
or joins Ray and checks the cluster before the stage writes anything.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import socket
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ldmdata.errors import LdmdataError

ENGINES = ("local", "ray")
# The ``engine`` keys of a stage's params.yaml section, with their defaults.
ENGINE_DEFAULTS: dict = {"engine": "local", "ray_address": None, "workers": 1,
                         "gpus_per_worker": 0}
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Engine:
    """How to run a stage's batches; never what they compute (kept out of output configs)."""

    name: str = ENGINE_DEFAULTS["engine"]
    ray_address: str | None = ENGINE_DEFAULTS["ray_address"]  # None: RAY_ADDRESS, else local
    workers: int = ENGINE_DEFAULTS["workers"]
    gpus_per_worker: float = ENGINE_DEFAULTS["gpus_per_worker"]

    @classmethod
    def from_params(cls, section: dict) -> Engine:
        """From a stage's params section (its ``engine``, ``ray_address``, ... keys)."""
        return cls(section["engine"], section["ray_address"], section["workers"],
                   section["gpus_per_worker"])

    def check(self) -> None:
        """One-line errors for bad values, and for ``ray`` without Ray installed."""
        if self.name not in ENGINES:
            raise LdmdataError(f"unknown engine {self.name!r}; choose one of: {', '.join(ENGINES)}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise LdmdataError(f"workers must be an integer >= 1, got {self.workers!r}")
        if (not isinstance(self.gpus_per_worker, int | float)
                or isinstance(self.gpus_per_worker, bool) or self.gpus_per_worker < 0):
            raise LdmdataError(f"gpus_per_worker must be a number >= 0, got "
                               f"{self.gpus_per_worker!r}")
        if self.name == "ray" and importlib.util.find_spec("ray") is None:
            raise LdmdataError("--engine ray needs Ray: pip install 'ldmdata[ray]'")

    def worker_device(self, device: str) -> str:
        """The device the batches run on. On Ray, ``auto`` is a GPU exactly when workers get
        one, and any ``cuda[:N]`` is the worker's own GPU (Ray sets CUDA_VISIBLE_DEVICES)."""
        if self.name == "local":
            return device
        if device.startswith("cuda") and not self.gpus_per_worker:
            raise LdmdataError(f"device {device} on Ray needs --gpus-per-worker > 0")
        if device == "auto":
            return "cuda" if self.gpus_per_worker else "cpu"
        return "cuda" if device.startswith("cuda") else device

    def record(self) -> dict:
        """For a manifest's runtime block."""
        if self.name == "local":
            return {"engine": "local"}
        return {"engine": "ray", "workers": self.workers, "gpus_per_worker": self.gpus_per_worker}


@contextmanager
def connect(engine: Engine):
    """Join (or start) Ray for a ``ray`` engine and check it can host the workers.

    An initialised Ray in this process is used as is; else ``ray_address`` or ``RAY_ADDRESS``
    is joined, or a local Ray is started for the run and shut down after it.
    """
    if engine.name == "local":
        yield
        return
    import ray

    started = False
    if not ray.is_initialized():
        address = engine.ray_address or os.environ.get("RAY_ADDRESS")
        if address and address != "auto":
            _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise LdmdataError(f"cannot join the Ray cluster at {address}: "
                               f"{str(err).splitlines()[0]}") from None
        started = True
    try:
        _check_resources(ray.cluster_resources(), engine)
        yield
    finally:
        while _RUNS:
            _RUNS.pop().close()
        if started:
            ray.shutdown()


def _check_reachable(address: str) -> None:
    """A quick TCP check of ``[ray://]host:port`` (Ray itself retries for a long time)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        raise LdmdataError(f"cannot reach a Ray cluster at {address}: {err}") from None


def _check_resources(resources: dict, engine: Engine) -> None:
    gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 0)
    need = engine.workers * engine.gpus_per_worker
    if need > gpus:
        raise LdmdataError(f"{engine.workers} workers with {engine.gpus_per_worker:g} GPU each "
                           f"need {need:g} GPUs; the Ray cluster has {gpus:g}")
    if engine.workers > cpus:
        raise LdmdataError(f"{engine.workers} workers need a CPU each; the Ray cluster has "
                           f"{cpus:g}")


def run_batches(engine: Engine, batches: list, make_worker: Callable[[], object],
                work: Callable[[object, object], object]) -> Iterator:
    """``work(worker, batch)`` for each batch, in order; ``worker = make_worker()`` per worker.

    For ``ray``, ``make_worker``, ``work``, the batches and the results must pickle, and
    :func:`connect` must be open; it stops the run when it closes (e.g. on an interrupt).
    """
    if engine.name == "local":
        return _run_local(batches, make_worker, work)
    run = _run_ray(engine, batches, make_worker, work)
    _RUNS.append(run)
    return run


_RUNS: list[Generator] = []  # Ray runs to stop when their connect() block ends


def _run_local(batches: list, make_worker, work) -> Iterator:
    if batches:
        worker = make_worker()
        for batch in batches:
            yield work(worker, batch)


def _run_ray(engine: Engine, batches: list, make_worker, work) -> Generator:
    if not batches:
        return
    import ray

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    items = [{"batch": pickle.dumps(batch)} for batch in batches]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _RayWorker,
        fn_constructor_args=(make_worker, work),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=engine.workers),
        num_cpus=1,
        num_gpus=engine.gpus_per_worker,
    )  # Ray Data's actor pools default to max_restarts=-1, max_task_retries=-1: a dead
    # actor is replaced and its batch run again (ray/data/.../actor_pool_map_operator.py)
    rows = iter(dataset.iter_rows())
    try:
        for row in rows:
            yield pickle.loads(row["result"])
    finally:
        rows.close()  # stops the execution and its actors when the caller stops early


class _RayWorker:
    """One actor of the pool: builds its worker once, then runs batches through it."""

    def __init__(self, make_worker: Callable[[], object], work: Callable[[object, object], object]):
        self.worker, self.work = make_worker(), work

    def __call__(self, batch: dict) -> dict:
        return {"result": [pickle.dumps(self.work(self.worker, pickle.loads(item)))
                           for item in batch["batch"]]}
