"""nnbench-extras: an example nnbench plugin distribution.

The hook implementations live in :mod:`nnbench_extras.plugin`, which the ``nnbench`` entry point
of this distribution names; each component lives in a module of its own.
"""

__version__ = "0.1.0"
