"""What a run ran on: versions, host, devices and git commits, recorded with every run."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnbench.contract.release import VERSION


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder`` (with ``+dirty`` for local changes), if it is a git repo."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def environment(devices: Mapping[str, str], threads: int, remote: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A JSON-ready description of the machine and software a run uses.

    :param devices: the devices the run's plugins discovered, name -> description.
    :param threads: the torch threads each training process uses.
    :param remote: the devices of the machines the executor trains on when they are not this one (a cluster's
        kinds, ``cuda`` -> ``8 GPUs on 2 nodes``); each trial records its own node and device.
    """
    import torch

    return {
        "nnbench": VERSION,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "pid": os.getpid(),  # with the host: tells a later run whether this run's process is still alive
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "devices": dict(devices),
        **({"executor_devices": dict(remote)} if remote else {}),
        "git_commit": git_commit(Path.cwd()),
        "nnbench_commit": git_commit(Path(__file__).resolve().parent),
        "argv": sys.argv,
    }
