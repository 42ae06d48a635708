"""Where nnbench reads and writes by default, declared once."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DEFAULT_STORE = "nnbench.db"
"""The results database, relative to the working folder (``--store``, ``NNBENCH_STORE``, ``store=``)."""
STORE_ENV_VAR = "NNBENCH_STORE"
DEFAULT_REPORT_DIR = "reports"
"""Where reports go: ``reports/<run>/index.html`` for a run, ``reports/combined-<runs>.html`` for several."""
DATA_ENV_VAR = "NNBENCH_DATA"
"""Where nnbench keeps data on disk (downloaded data sets, saved splits, remembered plugin checks)."""


def data_root() -> Path:
    """``$NNBENCH_DATA``, else the platform's cache folder for nnbench (``~/.cache/nnbench`` on Linux)."""
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR]).expanduser()
    return Path(platformdirs.user_cache_dir("nnbench"))
