"""What a run ran on: versions, host, devices and git commits, recorded with every run."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch


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


def available_devices() -> list[str]:
    """Every torch device this process can train on: ``cpu``, each ``cuda:N``, ``mps``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    if device == "cpu":
        return platform.processor() or platform.machine()
    return device


def environment() -> dict[str, Any]:
    """A JSON-ready description of the machine and software a run uses."""
    from nnbench import __version__

    return {
        "nnbench": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "devices": {d: describe_device(d) for d in available_devices()},
        "git_commit": git_commit(Path.cwd()),
        "nnbench_commit": git_commit(Path(__file__).resolve().parent),
        "argv": sys.argv,
    }
