"""``nnbench run`` that also writes how long its trials took, training and evaluation included.

Used by ``suite.py`` to split a whole run's wall-clock time into training steps (the stored
``train_time``), the per-epoch held-out evaluation the trainer does around them, and what the
harness adds around trials (start-up, grid expansion, store writes, the printed leaderboard).
Only the inline executor (``--workers 1``) trains in this process, so only it is timed.

    python benchmarks/timed_run.py SECONDS_FILE [nnbench run arguments...]
"""

from __future__ import annotations

import atexit
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    seconds_file = Path(sys.argv[1])
    import nnbench.training.ensemble as ensemble
    from nnbench.cli import main as nnbench_main

    train_item = ensemble.train_item
    total = [0.0]

    def timed_train_item(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return train_item(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - start

    ensemble.train_item = timed_train_item  # the run's job imports it when it trains
    atexit.register(lambda: seconds_file.write_text(repr(total[0])))
    sys.argv = ["nnbench", "run", *sys.argv[2:]]
    nnbench_main()


if __name__ == "__main__":
    main()
