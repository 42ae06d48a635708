"""The one exception type users see: every message says what was wrong and what would be right."""

from __future__ import annotations


class NNBenchError(Exception):
    """A problem with the user's input or environment that nnbench can explain in one message."""
