"""What the Python API does differently in a Jupyter kernel: an error of bad input (an :class:`NNBenchError`)
shows as its one-line message, not as a traceback through nnbench's own code; ``%tb`` shows the traceback of
that error all the same. Set up by the first call of the API in a kernel, unless the user set a handler of
exceptions of their own."""

from __future__ import annotations

import sys
from typing import Any

from nnbench.contract.errors import NNBenchError

TRACEBACK_HINT = "%tb shows the traceback"


def shell() -> Any:
    """This process's Jupyter kernel shell, or ``None`` outside a kernel (a script, a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    found = ipython.get_ipython() if ipython is not None else None
    return found if found is not None and type(found).__name__ == "ZMQInteractiveShell" else None


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel."""
    return shell() is not None


def short_errors() -> None:
    """In a Jupyter kernel, show an :class:`NNBenchError` as one line (see the module docstring)."""
    kernel = shell()
    if kernel is None or getattr(kernel, "custom_exceptions", ()) not in ((), (NNBenchError,)):
        return
    kernel.set_custom_exc((NNBenchError,), _one_line)


def _one_line(kernel: Any, etype: type[BaseException], value: BaseException, tb: Any,
              tb_offset: int | None = None) -> list[str]:
    """IPython's handler of an error it was told about: shows it as one line and keeps it where ``%tb`` (which
    shows the full traceback) looks for the last error."""
    shown = [f"{etype.__name__}: {value}  ({TRACEBACK_HINT})"]
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb
    show = getattr(kernel, "_showtraceback", None)  # how IPython shows an error: a kernel sends it to the page
    if show is not None:
        show(etype, value, shown)
    else:
        print(shown[0], file=sys.stderr)
    return shown
