"""Building a report's sections at once, each in a process forked from this one.

Drawing figures takes most of a report's time (matplotlib writes SVG in Python), one figure after
another on one core. Where ``fork`` is safe (Linux, and no other thread in this process that a
child could inherit holding a lock) and more than one core is usable, each section is built in a
forked child, as many at once as there are cores. A child starts with everything this process
holds (the frames, anything already computed, the imported libraries), so nothing is sent to
it; it sends back its finished section, pickled. A child that raises, dies or returns what cannot
be pickled costs only time: that section is built again here, where any error is raised just as
it would be without children.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from nnbench.machine import usable_cores

T = TypeVar("T")


def can_fork() -> bool:
    """Whether children may be forked here: Linux (elsewhere system libraries do not survive a
    fork reliably), with no other thread running (a thread holding a lock at the fork would leave
    the child waiting for it forever)."""
    return sys.platform == "linux" and threading.active_count() == 1


def build_all(builders: Sequence[Callable[[], T]], processes: int | None = None,
              order: Sequence[int] | None = None) -> list[T]:
    """Each builder's result, in order: built in up to ``processes`` forked children at once
    (default: the usable cores), or one after another here where that cannot help or is not safe.

    ``order`` is the indexes of ``builders`` in the order their children start (default: as given).
    Starting the longest first keeps every core busy to the end, instead of one long build left
    running alone; the results come back in the builders' order either way.
    """
    order = list(range(len(builders))) if order is None else list(order)
    if sorted(order) != list(range(len(builders))):
        raise ValueError(f"order must list each of the {len(builders)} builders' indexes once, not {order}")
    if len(builders) < 2 or not can_fork():
        processes = 1
    elif processes is None:
        processes = usable_cores()
    if processes < 2:
        return [build() for build in builders]
    gc.freeze()  # a child's garbage collector leaves the inherited objects alone, instead of copying their pages
    try:
        built = _build_in_children(builders, processes, order)
    finally:
        gc.unfreeze()
    return [built[index] if index in built else build() for index, build in enumerate(builders)]


def _build_in_children(builders: Sequence[Callable[[], T]], processes: int, order: Sequence[int]) -> dict[int, T]:
    """The results that children sent back whole, by builder's index."""
    context = multiprocessing.get_context("fork")
    built: dict[int, T] = {}
    waiting = deque((index, builders[index]) for index in order)
    running: dict[Any, tuple[int, Any]] = {}  # result pipe -> (builder's index, child)
    while waiting or running:
        while waiting and len(running) < processes:
            index, build = waiting.popleft()
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_build_and_send, args=(build, send), daemon=True)
            child.start()
            send.close()  # the child holds the only writing end: a child that dies reads as end of file
            running[receive] = (index, child)
        for ready in wait(list(running)):
            index, child = running.pop(ready)
            result = _receive(ready)  # type: ignore[arg-type]
            child.join()
            if result is not None:
                built[index] = result[0]
    return built


def _build_and_send(build: Callable[[], Any], send: Connection) -> None:
    try:
        payload = pickle.dumps((build(),), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # built again in the parent, which raises it where it is seen
        payload = b""
    send.send_bytes(payload)
    send.close()
    os._exit(0)  # nothing inherited (an open store, atexit handlers) is finalized in the child


def _receive(receive: Connection) -> tuple[Any] | None:
    try:
        payload = receive.recv_bytes()
        return pickle.loads(payload) if payload else None
    except Exception:  # a child that died, or a section that does not unpickle: built again here
        return None
    finally:
        receive.close()
