"""Lifecycle hooks that raise, counting their calls (picklable: sent to worker processes)."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from nnbench import hookimpl


class RaisingHooks:
    """Every lifecycle hook raises (``after_epoch`` with ``SystemExit``, as a plugin calling
    ``sys.exit`` would); ``calls`` counts how often each was called in this process."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @hookimpl
    def before_run(self, run_id: str, trials: list[Any]) -> None:
        self.calls["before_run"] += 1
        raise RuntimeError("before_run is broken")

    @hookimpl
    def after_epoch(self, trial: Any, record: Any) -> None:
        self.calls["after_epoch"] += 1
        sys.exit(4)

    @hookimpl
    def after_trial(self, trial: Any, result: Any) -> None:
        self.calls["after_trial"] += 1
        raise ValueError("after_trial is broken")

    @hookimpl
    def after_run(self, run_id: str, results: list[Any]) -> None:
        self.calls["after_run"] += 1
        raise KeyError("after_run is broken")
