"""Plugins that let tests see inside worker processes (picklable: they travel to the workers)."""

from __future__ import annotations

import os
import signal
import time
import warnings
from typing import Any

import torch
from torch import nn

from nnbench import Architecture, hookimpl
from nnbench.builtin.networks import build_fnn

PID_LOG = "NNBENCH_TEST_PID_LOG"


class PidRecorder:
    """Writes ``trial_id pid`` after each epoch to the file named by ``$NNBENCH_TEST_PID_LOG``."""

    @hookimpl
    def after_epoch(self, trial: Any, record: Any) -> None:
        with open(os.environ[PID_LOG], "a") as log:
            log.write(f"{trial.trial_id} {os.getpid()}\n")


class SlowToLoad:
    """Takes ``seconds`` to arrive in a worker, like a plugin with heavy imports."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __setstate__(self, state: dict[str, Any]) -> None:
        time.sleep(state["seconds"])
        self.__dict__.update(state)


def _seed_one_crashes(spec: Any, outputs: int, activation: Any) -> nn.Module:
    if torch.initial_seed() == 1:  # the trainer seeds torch with the trial's seed before building
        os.kill(os.getpid(), signal.SIGSEGV)
    return build_fnn(spec, outputs, activation, hidden=[8])


def _hangs(spec: Any, outputs: int, activation: Any) -> nn.Module:
    time.sleep(600)
    raise AssertionError("unreachable")


def _warns(spec: Any, outputs: int, activation: Any) -> nn.Module:
    warnings.warn("this architecture is noisy", UserWarning, stacklevel=1)
    return build_fnn(spec, outputs, activation, hidden=[8])


class ProbeArchitectures:
    """``seed1_crashes`` (seed 1 segfaults, the others train), ``hangs`` and ``warns``; none stacks."""

    @hookimpl
    def register_architectures(self, register: Any) -> None:
        register(Architecture("seed1_crashes", _seed_one_crashes, ("vector",), "seed 1 kills its process"))
        register(Architecture("hangs", _hangs, ("vector",), "never returns"))
        register(Architecture("warns", _warns, ("vector",), "warns while it is built"))


def send_frozen_count(conn: Any) -> None:
    """In a process started like a worker: send how many objects its garbage collector leaves alone."""
    import gc

    conn.send(gc.get_freeze_count())
    conn.close()
