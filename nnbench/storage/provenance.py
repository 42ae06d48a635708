"""Which machine a run ran on, read from the environment every run records: what tells timings of one machine
from another's (bundles describe it, merges and the report warn about it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Hardware:
    """The machine of a run: its host name, its core count and its devices (name -> description). Two runs on
    one machine have equal ``Hardware``; timings (time per epoch, throughput, peak memory) compare only
    between runs of equal hardware."""

    host: str
    cpu_count: int | None
    devices: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        """``vm (2 cores; cpu x86_64, cuda:0 NVIDIA H100)``."""
        cores = f"{self.cpu_count} cores" if self.cpu_count else "cores unknown"
        devices = ", ".join(f"{name} {description}".strip() for name, description in self.devices)
        return f"{self.host} ({cores}{'; ' + devices if devices else ''})"

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "cpu_count": self.cpu_count, "devices": dict(self.devices)}


def hardware(environment: Mapping[str, Any] | str | None) -> Hardware:
    """The hardware a run's ``environment`` (a mapping, or the JSON text the store holds) describes; a run
    that recorded none reads as an unknown host."""
    if isinstance(environment, str):
        try:
            environment = json.loads(environment)
        except ValueError:
            environment = None
    if not isinstance(environment, Mapping):
        environment = {}
    devices = environment.get("devices")
    pairs = tuple(sorted((str(k), str(v)) for k, v in devices.items())) if isinstance(devices, Mapping) else ()
    cores = environment.get("cpu_count")
    return Hardware(str(environment.get("host") or "unknown host"), cores if isinstance(cores, int) else None, pairs)
