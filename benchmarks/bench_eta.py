"""The time left that a first run's progress bar shows, against the time the run really took (target: within a factor
of 2 once a tenth of the run has passed).

    python benchmarks/bench_eta.py [--repeats 2] [-- GRID FLAGS]

Runs the default grid (``nnbench run`` with no flags, as a new user's first run is; other flags after ``--``) in a
fresh store, twice by default (the second run in a fresh store too, so neither reads stored timings), and records
the forecast at each result. Prints the first forecast, then the forecast against the time that was really left at
10%, 25%, 50% and 75% of the run, the worst ratio from 10% to 95% of the run (in its last moments, a forecast and
what is left are fractions of a second), and the load average before and after each run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nnbench.contract.run_options import RunOptions
from nnbench.progress import ConsoleProgress, format_duration
from nnbench.session import Session

CHECKPOINTS = (0.10, 0.25, 0.50, 0.75)


class Recorder(ConsoleProgress):
    """The forecast of the time left, as the bar would show it, at the start and at each result."""

    def __init__(self, session: Session) -> None:
        super().__init__(session.domain, session.pm, lambda *a, **k: None, bar=False, plan=False, summary=False)
        self.points: list[tuple[float, float]] = []
        self.start: float | None = None

    def scheduled(self, forecast: Any) -> None:
        super().scheduled(forecast)
        if self.start is None:
            self.start = time.monotonic()
            self.points.append((0.0, forecast.seconds_left()))

    def result(self, result: Any) -> None:
        super().result(result)
        assert self.forecast is not None and self.start is not None
        self.points.append((time.monotonic() - self.start, self.forecast.seconds_left()))


def one_run(flags: dict[str, str], folder: Path) -> list[tuple[float, float]]:
    session = Session()
    recorder = Recorder(session)
    session.run(session.grid(**flags), folder / "eta.db", RunOptions(), observer=recorder)
    return recorder.points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("grid", nargs="*", help="grid flags as KEY=VALUE (task=digits arch=fnn,cnn ...)")
    args = parser.parse_args()
    flags = dict(item.split("=", 1) for item in args.grid)
    worst_of_all = 0.0
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="nnbench-eta-") as tmp:
            before = os.getloadavg()[0]
            points = one_run(flags, Path(tmp))
            after = os.getloadavg()[0]
        end = points[-1][0]
        print(f"run {repeat + 1}: took {format_duration(end)} ({end:.1f} s; load {before:.2f} before, {after:.2f} "
              "after: a load that changes during the run moves what is left, and no forecast knows it); the first "
              f"forecast said {format_duration(points[0][1])} ({points[0][1]:.1f} s, x{points[0][1] / end:.2f})")
        for share in CHECKPOINTS:
            when, left = next((w, f) for w, f in points if w >= share * end)
            actual = end - when
            print(f"  at {share:.0%} ({when:5.1f} s): forecast {left:6.1f} s, really {actual:6.1f} s "
                  f"(x{left / actual:.2f})" if actual > 0 else f"  at {share:.0%}: done")
        ratios = [left / (end - when) for when, left in points[1:] if 0.1 * end <= when <= 0.95 * end]
        worst = max(max(ratios), 1 / min(ratios)) if ratios else 1.0
        worst_of_all = max(worst_of_all, worst)
        print(f"  worst from 10% to 95% of the run: a factor of {worst:.2f} (of {len(ratios)} forecasts)")
    print(f"worst factor over {args.repeats} runs: {worst_of_all:.2f} (target: under 2)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NNBENCH_PLUGINS", "none")
    sys.exit(main())
