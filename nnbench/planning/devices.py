"""Which devices a grid's trials ask for: ``--device`` words resolved against the devices where the trials train.

A trial asks for a device *kind* (``cpu``, ``cuda``, ``mps``): any device of that kind where it trains may take it,
so its id does not depend on which machine, or which of a machine's devices, trained it (each result records the
node and device that did). ``all`` is every kind there, ``auto`` the first accelerator kind (else ``cpu``). On this
machine a trial may also ask for one device by its index (``cuda:1``), to compare two devices of one machine; such a
trial keeps the id it always had, so results stored with an index before kinds were planned resume under it. Where
the trials train on other machines (a cluster), an index names nothing and is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from nnbench.contract.errors import NNBenchError
from nnbench.contract.executor import device_kind


def device_kinds(present: Sequence[str]) -> list[str]:
    """The kinds of ``present`` devices, in order of first appearance."""
    return list(dict.fromkeys(device_kind(name) for name in present))


def resolve_devices(wanted: Sequence[str], present: Sequence[str], *, where: str = "here",
                    indices: bool = True) -> list[str]:
    """The devices that trials of ``wanted`` (``--device`` words) ask for, against the ``present`` devices (names
    of one machine's devices, or kinds), in order, each once. ``where`` says in words where they are (``here``, ``on
    the Ray cluster``); ``indices``: whether a trial may ask for one device by its index (only on this machine)."""
    kinds = device_kinds(present)
    resolved: list[str] = []
    for name in wanted:
        if name == "all":
            resolved += kinds
        elif name == "auto":
            resolved.append(next((kind for kind in kinds if kind != "cpu"), "cpu"))
        elif name in kinds or (indices and name in present):
            resolved.append(name)
        elif not indices and device_kind(name) in kinds:
            raise NNBenchError(f"device {name!r} names one device of one machine, and the trials train {where}: ask "
                               f"for its kind, --device {device_kind(name)} (any of its devices takes the trials)")
        else:
            own = [kind for kind in kinds if kind not in present]  # kinds named only by their devices' indices
            also = f"a kind: {', '.join(own)}; or " if indices and own else ""
            raise NNBenchError(f"device {name!r} is not available{'' if where == 'here' else ' ' + where}; devices "
                               f"{where}: {', '.join(present)} (or {also}auto, all)")
    return list(dict.fromkeys(resolved))
