"""The devices this process's torch can use: cpu, each CUDA device, and Apple's MPS."""

from __future__ import annotations

import platform

from nnbench.contract.specs import Device


def discover_devices(cuda_names: list[str], mps: bool) -> list[Device]:
    """Devices for a machine with the given CUDA device names and MPS availability."""
    devices = [Device("cpu", platform.processor() or platform.machine() or "CPU")]
    devices += [Device(f"cuda:{i}", name) for i, name in enumerate(cuda_names)]
    if mps:
        devices.append(Device("mps", "Apple Metal Performance Shaders"))
    return devices


def local_devices() -> list[Device]:
    """The devices this process's torch can use."""
    import torch  # asked when the devices are registered: loading the plugins imports no torch


    cuda = []
    if torch.cuda.is_available():
        cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    mps_backend = getattr(torch.backends, "mps", None)
    return discover_devices(cuda, bool(mps_backend and mps_backend.is_available()))
