"""Built-in architectures (the networks are in :mod:`nnbench.builtin.networks`, imported on registration)."""

from __future__ import annotations

from collections.abc import Callable

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Architecture


@hookimpl
def register_architectures(register: Callable[[Architecture], None]) -> None:
    from nnbench.builtin.networks import ARCHITECTURES  # torch: loading the plugins imports none

    for architecture in ARCHITECTURES:
        register(architecture)
