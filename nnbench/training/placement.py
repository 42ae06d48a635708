"""Where a work item trains: the device it asks for, made this process's current one, and what a result records of it.

A trial asks for a device kind (``cuda``) or one device (``cuda:1``); the executor may choose one device of the kind
for the item (``WorkItem.where``). Training then runs with that device current, so that the trial's own device
(``torch.device("cuda")``) means it, and each result records the ``node`` (host name) and ``device`` (with its index
on that node) that trained it, and the device's model where torch can tell it.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def placed(device: str) -> Iterator[str]:
    """Make ``device`` (one device, or a kind: this process's current device of it) current while the block runs;
    yields its name with its index where it has one (``cuda:1``)."""
    target = torch.device(device)
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if accelerator is None or target.type != accelerator.type:  # the CPU, or a device without indices here
        yield device
        return
    index = target.index if target.index is not None else torch.accelerator.current_device_index()
    with torch.accelerator.device_index(index):
        yield f"{target.type}:{index}"


def trained_where(device: str) -> dict[str, Any]:
    """What a result records of where it trained: this node's name, ``device`` and, for CUDA, the device's model."""
    record: dict[str, Any] = {"node": platform.node(), "device": device}
    target = torch.device(device)
    if target.type == "cuda" and target.index is not None:
        record["device_name"] = torch.cuda.get_device_name(target.index)
    return record
