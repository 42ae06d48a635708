"""The devices of this machine, registered as the built-in devices (see :func:`nnbench.machine.local_devices`)."""

from __future__ import annotations

from collections.abc import Callable

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Device
from nnbench.execution.devices import local_devices


@hookimpl
def register_devices(register: Callable[[Device], None]) -> None:
    for device in local_devices():
        register(device)
