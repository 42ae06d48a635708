"""The one exception type users see: every message says what was wrong and what would be right."""

from __future__ import annotations


class NNBenchError(Exception):
    """A problem with the user's input or environment that nnbench can explain in one message."""


class DuplicateComponentError(NNBenchError):
    """Two plugins registered the same name for one kind."""


class InvalidComponentError(NNBenchError):
    """A plugin registered something that is not a spec of the hook's kind."""


class UnknownComponentError(NNBenchError):
    """A name that no plugin registered."""
