"""`nnbench micro`: every component timed by pytest-benchmark, stored, exported as its JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from nnbench import Activation, hookimpl
from nnbench.contract.errors import NNBenchError
from nnbench.session import Session
from nnbench.storage.store import ResultStore
from nnbench.training.micro import micro_cases, parse_ints, run_micro

QUICK = {"shape": (8, 4), "sizes": (100,), "max_time": 0.001}


pytestmark = pytest.mark.usefixtures("one_thread")


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this activation is broken")


class MicroPlugin:
    @hookimpl
    def register_activations(self, register: Callable[[Activation], None]) -> None:
        register(Activation("softsign_plugin", nn.Softsign, "a third-party activation"))
        register(Activation("broken", Broken, "raises when called"))


def test_every_builtin_component_gets_a_row_on_cpu(tmp_path: Path, catalogue: Any) -> None:
    json_path = tmp_path / "micro.json"
    frame = run_micro(tmp_path / "store.db", session=Session(), json_path=json_path, **QUICK)
    for kind, registry in (("activation", catalogue.activations), ("loss", catalogue.losses),
                           ("optimizer", catalogue.optimizers)):
        assert sorted(frame.loc[frame["kind"] == kind, "name"]) == sorted(registry.names())
    assert (frame["status"] == "ok").all(), frame.loc[frame["status"] != "ok", ["name", "error"]]
    assert (frame["device"] == "cpu").all()
    assert (frame["min"] > 0).all() and (frame["rounds"] >= 5).all()
    assert (frame["min"] <= frame["median"]).all() and (frame["median"] <= frame["max"]).all()
    assert set(frame.loc[frame["kind"] == "optimizer", "shape"]) == {"100"}
    with ResultStore(tmp_path / "store.db") as store:
        stored = store.micro()
    assert len(stored) == len(frame) and set(stored["run_id"]) == {frame["run_id"].iloc[0]}
    report = json.loads(json_path.read_text())  # pytest-benchmark's own --benchmark-json format
    assert len(report["benchmarks"]) == len(frame)
    first = report["benchmarks"][0]
    assert {"min", "max", "mean", "stddev", "rounds"} <= set(first["stats"])
    assert {"kind", "name", "plugin", "device", "shape", "size"} <= set(first["extra_info"])


def test_plugin_components_are_measured_and_a_broken_one_is_reported(
        tmp_path: Path, nnbench_plugin: Callable[..., Any]) -> None:
    nnbench_plugin(MicroPlugin())
    frame = run_micro(tmp_path / "store.db", session=Session(), kinds=["activation"],
                      names=["softsign_plugin", "broken", "relu"], **QUICK).set_index("name")
    assert frame.loc["softsign_plugin", "status"] == "ok"
    assert frame.loc["softsign_plugin", "plugin"] != frame.loc["relu", "plugin"]
    assert frame.loc["broken", "status"] == "failed"
    assert "this activation is broken" in frame.loc["broken", "error"]
    with ResultStore(tmp_path / "store.db") as store:  # a second run adds rows under its own id
        first = store.micro()
    run_micro(tmp_path / "store.db", session=Session(), kinds=["loss"], names=["mse"], **QUICK)
    with ResultStore(tmp_path / "store.db") as store:
        assert len(store.micro()) == len(first) + 1
        assert len(store.micro([first["run_id"].iloc[0]])) == len(first)


def test_cases_follow_kinds_names_shape_sizes_and_devices(catalogue: Any) -> None:
    cases = micro_cases(catalogue, ["optimizer", "loss"], ["adam*", "mse"], (32, 3), (10, 1000), ["cpu"])
    assert [c.case_id for c in cases] == ["optimizer-adam-cpu-10", "optimizer-adam-cpu-1000",
                                          "optimizer-adamw-cpu-10", "optimizer-adamw-cpu-1000",
                                          "optimizer-adamax-cpu-10", "optimizer-adamax-cpu-1000",
                                          "loss-mse-cpu-32x3"]


@pytest.mark.parametrize(("arguments", "message"), [
    ({"kinds": ["task"]}, "measures activation, loss, optimizer, norm, not 'task'"),
    ({"names": ["nothing*"]}, "no activation/loss/optimizer matches nothing*"),
    ({"shape": (0, 3)}, "shape must be positive integers"),
])
def test_bad_requests_are_explained(catalogue: Any, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(NNBenchError, match=message):
        micro_cases(catalogue, **arguments)


def test_an_absent_device_is_explained(tmp_path: Path) -> None:
    with pytest.raises(NNBenchError, match="device 'cuda:7' is not available"):
        run_micro(tmp_path / "store.db", session=Session(), devices=["cuda:7"], **QUICK)


def test_shapes_and_sizes_parse_from_the_command_line() -> None:
    assert parse_ints("256,256", "--shape") == (256, 256)
    assert parse_ints("64x8", "--shape") == (64, 8)
    with pytest.raises(NNBenchError, match="--sizes must be comma-separated whole numbers"):
        parse_ints("1e6", "--sizes")
