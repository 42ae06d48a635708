"""Architectures that misbehave on purpose, for the executor fault tests (picklable: sent to workers)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from torch import nn

from nnbench import Architecture, hookimpl


def _crash(spec: Any, outputs: int, activation: Any) -> nn.Module:
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def _exit(spec: Any, outputs: int, activation: Any) -> nn.Module:
    os._exit(3)


def _hang(spec: Any, outputs: int, activation: Any) -> nn.Module:
    time.sleep(600)
    raise AssertionError("unreachable")


def _raise(spec: Any, outputs: int, activation: Any) -> nn.Module:
    raise ValueError("this architecture always raises")


class FaultyArchitectures:
    """Registers segfault, exit, hang and raise architectures for vector inputs."""

    @hookimpl
    def register_architectures(self, register: Any) -> None:
        for name, build in (("segfault", _crash), ("exit", _exit), ("hang", _hang), ("raise", _raise)):
            register(Architecture(name, build, ("vector",), f"misbehaves: {name}"))

