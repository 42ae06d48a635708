"""Where nnbench keeps data on disk: downloaded data sets and the cached splits of built-in tasks."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "NNBENCH_DATA"


def data_root() -> Path:
    """``$NNBENCH_DATA``, else the platform's cache folder for nnbench (``~/.cache/nnbench`` on Linux)."""
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("nnbench"))
