"""The one exception type users see: every message says what was wrong and what would be right.

A message may echo what the user gave (a name, a path, a value); a value of ten thousand characters
must not become a line of ten thousand characters. :func:`echoed` shortens one value where a message
is made, and every :class:`NNBenchError` shortens whatever long value its message still holds when it
is shown (its ``args`` keep the whole text).
"""

from __future__ import annotations

import re

ECHO_LIMIT = 120
"""The most characters of one value that a message shows; longer ones keep their start and end."""

_LONG_WORD = re.compile(rf"\S{{{2 * ECHO_LIMIT + 1},}}")


def shortened(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text``, or where it is longer than ``limit`` its start and end around an ellipsis, with its length."""
    if len(text) <= limit:
        return text
    head = max(1, limit * 2 // 3)
    tail = max(1, limit - head - 1)
    return f"{text[:head]}…{text[-tail:]} ({len(text):,} characters)"


def echoed(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` for a message that echoes what the user gave, shortened past ``limit`` characters."""
    return shortened(repr(value), limit)


def shorten_message(message: str) -> str:
    """``message`` with every run of more than ``2 * ECHO_LIMIT`` characters without a space shortened
    (a value echoed whole somewhere a message was made without :func:`echoed`)."""
    def shorten(match: re.Match[str]) -> str:
        word = match.group()
        value = word.rstrip(":;,.")  # the sentence's punctuation stays after the count
        return shortened(value) + word[len(value):]

    return _LONG_WORD.sub(shorten, message)


class NNBenchError(Exception):
    """A problem with the user's input or environment that nnbench can explain in one message."""

    def __str__(self) -> str:
        return shorten_message(super().__str__())


class DuplicateComponentError(NNBenchError):
    """Two plugins registered the same name for one kind."""


class InvalidComponentError(NNBenchError):
    """A plugin registered something that is not a spec of the hook's kind."""


class UnknownComponentError(NNBenchError):
    """A name that no plugin registered."""
