"""Shared fixtures: a loaded catalogue and hand-written result stores.

Tests register an in-process plugin for one test with ``nnbench_plugin`` (from nnbench.testing).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nnbench.loading.catalogue import Catalogue, collect_catalogue
from nnbench.loading.plugins import PluginManager, make_plugin_manager

pytest_plugins = ("pytester",)  # runs nnbench.testing's fixture inside a pytest session of its own

TRACKER_SWITCHES = ("NNBENCH_MLFLOW", "NNBENCH_TENSORBOARD")
"""The switches of the tracker plugins in plugins/ (see docs/trackers.md)."""

# Under mutation testing (mutmut), worker processes start in a test's temporary folder, where mutmut's
# configuration cannot be found, so they must not load it. They would, by re-running this process's
# main script (mutmut's) as multiprocessing does; without it they start as from a notebook. And the
# pass that records which tests reach which functions reads its variable in this process only: the
# workers run the unmutated code for that pass. When a mutant is tested the variable names it, and the
# workers, which take over this process's environment, run that mutant too.
if "MUTANT_UNDER_TEST" in os.environ:
    vars(sys.modules["__main__"]).pop("__file__", None)
    if os.environ["MUTANT_UNDER_TEST"] == "stats":
        del os.environ["MUTANT_UNDER_TEST"]


@pytest.fixture(autouse=True)
def without_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """nnbench's own tests see the built-ins only, whatever third-party plugins are installed
    (a test that exercises plugin loading sets NNBENCH_PLUGINS itself). Where one loads the installed
    plugins all the same (the tutorial's notebook), the trackers' live logging is off, so that no test run
    leaves MLflow or TensorBoard logs behind; the trackers' own tests (plugins/) turn it on."""
    monkeypatch.setenv("NNBENCH_PLUGINS", "none")
    for switch in TRACKER_SWITCHES:
        monkeypatch.setenv(switch, "off")


@pytest.fixture(scope="session", autouse=True)
def session_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Built-in tasks save their splits in a folder of this test session, not in the user's cache
    (a test about data folders sets NNBENCH_DATA itself)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NNBENCH_DATA", str(tmp_path_factory.mktemp("data")))
        yield


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train as the executors do (one torch thread): fast on a busy machine, and reproducible."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    """The built-in components only (third-party entry points are not loaded)."""
    return collect_catalogue(make_plugin_manager(load_entry_points=False))


@pytest.fixture
def plugin_manager() -> PluginManager:
    return make_plugin_manager(load_entry_points=False)


# -- result stores written by hand, for the analysis and report tests ------------------------------

FAKE_ENVIRONMENT = {"nnbench": "0.1.0", "torch": "2.13.0", "python": "3.11.7", "host": "testhost",
                    "platform": "Linux-test", "devices": {"cpu": "x86_64"}, "git_commit": "abc123"}
REGRESSION_TASKS = {"sine"}


def fake_result(task: str = "spirals", activation: str = "relu", optimizer: str = "adam", lr: float = 1e-3,
                seed: int = 0, metric: float = 0.5, *, arch: str = "fnn", loss: str | None = None,
                status: str = "ok", device: str = "cpu", epochs: int = 3,
                curve: list[tuple[float, float]] | None = None, train_time: float = 0.3,
                throughput: float | None = 1000.0, peak_memory: int | None = None, error: str | None = None,
                n_params: int = 100) -> Any:
    """A hand-made TrialResult: ``curve`` lists (train_loss, metric) per epoch (default: the metric
    reached linearly, the loss halving)."""
    from nnbench.contract.trial import EpochRecord, Trial, TrialResult

    regression = task in REGRESSION_TASKS
    trial = Trial(task, arch, activation, loss or ("mse" if regression else "cross_entropy"), optimizer, lr, 32,
                  epochs, seed, device, {"arch": {}, "optimizer": {}})
    points = curve or [(2.0 / 2**e, metric * e / epochs) for e in range(1, epochs + 1)]
    records = [EpochRecord(epoch=e, train_loss=loss_value, test_loss=loss_value, metric=value,
                           epoch_time=train_time / len(points))
               for e, (loss_value, value) in enumerate(points, start=1)]
    final = records[-1]
    return TrialResult(trial, status, "rmse" if regression else "accuracy", metric, final.train_loss,
                       final.test_loss, n_params=n_params, train_time=train_time, throughput=throughput,
                       peak_memory=peak_memory, error=error, curve=records)


def write_store(path: Any, results: list[Any], *, skipped: list[Any] | None = None, run_id: str = "run-1",
                grid: dict[str, Any] | None = None) -> Any:
    """Write one finished run of ``results`` to the store at ``path`` (no training) and return it open."""
    from nnbench.storage.store import ResultStore

    store = ResultStore(path)
    store.start_run(run_id, grid or {"task": ["spirals"], "seeds": 3}, FAKE_ENVIRONMENT, len(results), skipped or [])
    for result in results:
        store.save_result(run_id, result)
    store.finish_run(run_id)
    return store


@pytest.fixture(scope="session")
def trial_result() -> Callable[..., Any]:
    """Make a hand-made ``TrialResult`` (see :func:`fake_result`)."""
    return fake_result


@pytest.fixture(scope="session")
def store_writer() -> Callable[..., Any]:
    """Write hand-made results into a store (see :func:`write_store`); close what it returns."""
    return write_store


# -- the tuning protocol, validation curves and targets, for the fairness tests --------------------

LR_SPACE = {"lr": [1e-4, 1.0, "log"]}


def fake_protocol_result(task: str = "spirals", optimizer: str = "adam", lr: float = 1e-3, seed: int = 0,
                         metric: float = 0.5, *, role: str = "default", activation: str = "relu", budget: int = 4,
                         space: dict[str, list[Any]] | None = None, index: int = 0,
                         val: list[float] | None = None, epoch_times: list[float] | None = None,
                         optimizer_params: dict[str, float] | None = None, status: str = "ok",
                         train_time: float | None = None) -> Any:
    """A hand-made TrialResult of the tuning protocol: ``role`` is ``default``, ``tune`` or ``final``
    (stored protocols ``default``, ``tuning``, ``tuned``). ``val`` lists the validation metric per
    epoch (default: the final metric at every epoch), ``epoch_times`` the seconds of each epoch
    (default: 0.1 each)."""
    import dataclasses

    val = val or [metric] * 3
    epoch_times = epoch_times or [0.1] * len(val)
    result = fake_result(task, activation, optimizer, lr, seed, metric, epochs=len(val), status=status,
                         train_time=train_time if train_time is not None else sum(epoch_times))
    space = space or LR_SPACE
    params: dict[str, Any] = {"arch": {}, "optimizer": dict(optimizer_params or {})}
    if role == "tune":
        params["tuning"] = {"role": "tune", "budget": budget, "index": index, "tuned": sorted(space), "space": space}
    elif role == "final":
        params["tuning"] = {"role": "final", "budget": budget, "tuned": sorted(space), "space": space,
                            "selected_from": "0123456789abcdef"}
    result.trial = dataclasses.replace(result.trial, params=params)
    result.curve = [dataclasses.replace(record, val_metric=value, epoch_time=seconds)
                    for record, value, seconds in zip(result.curve, val, epoch_times, strict=True)]
    result.val_metric = val[-1]
    return result


@pytest.fixture(scope="session")
def protocol_result() -> Callable[..., Any]:
    """Make a hand-made ``TrialResult`` of the tuning protocol (see :func:`fake_protocol_result`)."""
    return fake_protocol_result


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Ray cluster of two nodes on this machine, for one module: a head of 2 CPUs and a node of 1 CPU with a
    stand-in GPU (a resource Ray counts; nothing trains on it), each started here and stopped by its process id.
    This process takes the nodes' Ray settings while it lasts (see ``local_cluster.py``)."""
    import ray
    from local_cluster import LocalRayCluster, cluster_env

    cluster = LocalRayCluster(tmp_path_factory.mktemp("ray-cluster"), cpus=(2, 1), gpus=(0, 1)).start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in cluster_env().items():
                if name.startswith("RAY_"):
                    patch.setenv(name, value)
            yield cluster
            if ray.is_initialized():
                ray.shutdown()
    finally:
        cluster.stop()
