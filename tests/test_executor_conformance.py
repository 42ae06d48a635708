"""Every executor passes the executor contract's conformance checks (nnbench.testing.executors); Ray's run on a
cluster of two nodes in test_cluster.py, with the other tests that share one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nnbench.testing.executors import ExecutorConformanceError, check_executor


@pytest.mark.parametrize("name", ["inline", "processes"])
def test_this_machines_executors_conform(name: str, tmp_path: Path) -> None:
    check_executor(name, tmp_path)


class Forgetful:
    """An executor that drops the last item of every plan: the checks must catch it."""

    def run(self, plan: Any, sink: Any) -> None:
        items = []
        while (item := plan.items.take()) is not None:
            items.append(item)
        for item in items[:-1]:
            if granted := sink.claim(item.trials):
                for result in plan.train(item.only(granted)):
                    sink.result(result)


class Swallows(Forgetful):
    """An executor that trains everything but swallows an interruption."""

    def run(self, plan: Any, sink: Any) -> None:
        while (item := plan.items.take()) is not None:
            if granted := sink.claim(item.trials):
                for result in plan.train(item.only(granted)):
                    try:
                        sink.result(result)
                    except KeyboardInterrupt:
                        return


@pytest.mark.parametrize(("executor", "message"), [
    (Forgetful, "every trial of every item must yield one result"),
    (Swallows, "swallowed an interruption"),
])
def test_the_checks_catch_an_executor_that_breaks_a_promise(nnbench_plugin: Any, tmp_path: Path, executor: type,
                                                           message: str) -> None:
    from nnbench import ExecutorSpec, hookimpl

    class Broken:
        @hookimpl
        def register_executors(self, register: Any) -> None:
            register(ExecutorSpec("broken", executor, "breaks a promise"))

    nnbench_plugin(Broken())
    with pytest.raises(ExecutorConformanceError, match=message):
        check_executor("broken", tmp_path)
