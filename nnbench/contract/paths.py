"""Where nnbench reads and writes by default, declared once."""

from __future__ import annotations

DEFAULT_STORE = "nnbench.db"
"""The results database, relative to the working folder (``--store``, ``NNBENCH_STORE``, ``store=``)."""
STORE_ENV_VAR = "NNBENCH_STORE"
DEFAULT_REPORT_DIR = "reports"
"""Where reports go: ``reports/<run>/index.html`` for a run, ``reports/combined-<runs>.html`` for several."""
