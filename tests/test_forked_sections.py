"""Report sections built at once in forked children: the same sections, in order, and nothing lost
when a child fails."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_outline import outline

from nnbench.reporting import build_report
from nnbench.reporting.forked import build_all, can_fork

PARENT = os.getpid()


def timed(index: int) -> Callable[[], tuple[int, int, float, float]]:
    def build() -> tuple[int, int, float, float]:
        start = time.monotonic()
        time.sleep(0.3)
        return index, os.getpid(), start, time.monotonic()

    return build


def test_builders_run_in_children_at_once_and_results_keep_their_order() -> None:
    assert can_fork()  # this test process runs no other thread
    results = build_all([timed(i) for i in range(4)], processes=2)
    assert [r[0] for r in results] == [0, 1, 2, 3]
    assert PARENT not in {r[1] for r in results} and len({r[1] for r in results}) == 4  # one child each
    starts, ends = sorted(r[2] for r in results), sorted(r[3] for r in results)
    assert starts[1] < ends[0]  # the first two overlapped
    assert starts[2] >= ends[0]  # never more than two at once
    assert [r[0] for r in build_all([timed(i) for i in range(4)], processes=1)] == [0, 1, 2, 3]


def test_children_start_in_the_order_given_and_results_still_come_in_the_builders_order() -> None:
    results = build_all([timed(i) for i in range(4)], processes=2, order=[3, 1, 0, 2])
    assert [r[0] for r in results] == [0, 1, 2, 3]
    starts = {r[0]: r[2] for r in results}
    assert starts[3] < starts[1] < starts[2] and starts[0] < starts[2]  # 3 and 1 first, then 0, then 2
    assert max(starts[3], starts[1]) < min(r[3] for r in results)  # the first two at once


@pytest.mark.parametrize("order", [[0, 1], [0, 1, 1], [0, 1, 3], [2, 1, 0, 0]])
def test_an_order_that_is_not_each_index_once_is_refused(order: list[int]) -> None:
    with pytest.raises(ValueError, match="each of the 3 builders' indexes once"):
        build_all([timed(i) for i in range(3)], processes=2, order=order)


def in_child_only(action: Callable[[], Any]) -> Callable[[], int]:
    def build() -> int:
        if os.getpid() != PARENT:
            action()
        return os.getpid()

    return build


def fail() -> None:
    raise ValueError("only in the child")


def test_a_child_that_raises_dies_or_sends_what_cannot_be_pickled_is_built_here_instead() -> None:
    unpicklable = lambda: (lambda: "made here")  # noqa: E731 - a lambda is what pickle refuses
    results = build_all([in_child_only(fail), in_child_only(lambda: os._exit(3)), unpicklable, timed(3)],
                        processes=2)
    assert results[0] == PARENT and results[1] == PARENT
    assert results[2]() == "made here"
    assert results[3][1] != PARENT  # the others still came from a child


def test_an_error_in_a_section_is_raised_here_as_without_children() -> None:
    def broken() -> None:
        raise ValueError("this section is broken")

    with pytest.raises(ValueError, match="this section is broken"):
        build_all([timed(0), broken], processes=2)


def test_with_another_thread_running_everything_is_built_here() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not can_fork()
        assert {r[1] for r in build_all([timed(i) for i in range(3)], processes=2)} == {PARENT}
    finally:
        stop.set()
        other.join()


def test_the_report_reads_the_same_built_in_children_or_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             trial_result: Callable[..., Any],
                                                             store_writer: Callable[..., Any]) -> None:
    from nnbench.loading.plugins import make_plugin_manager

    results = [trial_result(task, activation, optimizer, lr, seed, 0.5 + gain + seed / 100, epochs=4)
               for task in ("spirals", "sine") for activation, gain in (("relu", 0.05), ("tanh", 0.0))
               for optimizer, lr in (("sgd", 0.05), ("adam", 1e-3)) for seed in range(3)]
    pm = make_plugin_manager(load_entry_points=False)
    with store_writer(tmp_path / "same.db", results) as store:
        monkeypatch.setattr("nnbench.reporting.forked.usable_cores", lambda: 1)
        here = outline(build_report(store, ["run-1"], pm).html)
        monkeypatch.setattr("nnbench.reporting.forked.usable_cores", lambda: 2)
        assert can_fork()
        forked = outline(build_report(store, ["run-1"], pm).html)
    assert list(forked.sections) == list(here.sections) and forked.sections == here.sections
    assert forked.findings == here.findings
    assert sum(section["images"] for section in forked.sections.values()) >= 4


def test_the_progress_bar_leaves_no_thread_that_would_keep_the_report_from_forking(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from nnbench.progress import progress_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    bar = progress_bar(3, notebook=False)
    bar.update(1)
    assert not bar.disable  # a real, shown bar
    bar.close()
    assert threading.active_count() == 1 and can_fork()
