"""nnbench.run in a real Jupyter kernel, as a new user meets it: the help lists every kind; the user's own names
run; editing a module-level constant that an activation reads retrains its trials; bad input is one line with the
traceback on request (%tb); without ipywidgets the progress shows as text, and says once how to get the widget."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

CELLS = [
    """
import sys
import torch
from torch import nn
import nnbench
print("plugins loaded at import:", any(m.startswith("nnbench.builtin") for m in sys.modules))
""",
    "help(nnbench.run)",
    """
class CNN(nn.Module):
    def __init__(self, input_spec, outputs, activation):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), activation(), nn.Linear(8, outputs))

    def forward(self, x):
        return self.net(x)


mine = nnbench.run(task="digits", arch={"cnn": CNN}, activation="relu",
                   optimizer={"rmsprop": torch.optim.RMSprop}, seeds=2, epochs=1, store="kernel.db")
print("archs:", sorted(mine["arch"].unique()), "optimizers:", sorted(mine["optimizer"].unique()))
""",
    """
BEND = 4.0


class Bent(nn.Module):
    def forward(self, x):
        return 0.5 * (x + torch.sqrt(x * x + BEND))


first = nnbench.run(task="moons", arch="fnn", activation=["relu", Bent], optimizer="adam", seeds=2, epochs=1,
                    store="kernel.db")
""",
    """
BEND = 1.0
edited = nnbench.run(task="moons", arch="fnn", activation=["relu", Bent], optimizer="adam", seeds=2, epochs=1,
                     store="kernel.db")
print("retrained:", sorted(set(edited["trial_id"]) - set(first["trial_id"])) != [])
""",
    'nnbench.run(task="moons", arch="fnn", activation=nn.MSELoss, optimizer="adam", store="kernel.db")',
    "%tb",
]


@pytest.mark.slow
def test_a_first_session_in_a_jupyter_kernel(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    assert importlib.util.find_spec("ipywidgets") is None, "this test is about a kernel without ipywidgets"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source.strip()) for source in CELLS]
    for cell in notebook.cells[-2:]:
        cell.metadata["tags"] = ["raises-exception"]
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [cell.get("outputs", []) for cell in notebook.cells]

    def text(cell: int, name: str | None = None) -> str:
        return "".join(o.get("text", "") for o in outputs[cell] if o.get("output_type") == "stream"
                       and (name is None or o.get("name") == name))

    assert "plugins loaded at import: False" in text(0)
    help_text = text(1)
    assert "run(grid_file=None, *, task=None, arch=None" in help_text
    for kind in ("initializer", "norm"):  # the kinds that come through register_kinds, as a plugin's would
        assert f"    {kind}: " in help_text
    assert "an error of bad input is one line: ``%tb`` shows its traceback" in help_text

    assert "archs: ['cnn (yours)'] optimizers: ['rmsprop']" in text(2)
    assert "architecture 'cnn' is yours" in text(2) and "cnn (yours)/relu/cross_entropy/rmsprop" in text(2)
    assert text(2, "stdout").count("note: progress shows as text here") == 1  # said once ...
    assert "note: progress shows as text here" not in text(3)  # ... not at every run
    bar = text(2, "stderr")
    assert re.search(r"1/2 trials \[\d\d:\d\d, about \d\d:\d\d left, training digits cnn \(yours\)/relu/cross_entropy/"
                     r"rmsprop@0.001, 2 seeds\]", bar)

    assert "4 trials: 4 to train, 0 already stored" in text(3)
    assert "4 trials: 2 to train, 2 already stored" in text(4) and "retrained: True" in text(4)

    error = [o for o in outputs[5] if o.get("output_type") == "error"]
    assert len(error) == 1 and error[0]["ename"] == "ObjectError"
    assert len(error[0]["traceback"]) == 1
    assert error[0]["traceback"][0] == ("ObjectError: class torch.nn.modules.loss.MSELoss is a loss, not an "
                                        "activation: give it as loss=MSELoss  (%tb shows the traceback)")
    traceback = "\n".join(line for o in outputs[6] for line in _lines(o))
    assert "Traceback" in traceback and "converters.py" in traceback and "is a loss, not an activation" in traceback
    stored = sqlite3.connect(tmp_path / "kernel.db").execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM run_trials")
    assert stored.fetchone() == (2 + 4 + 4, 3)  # the refused call stored nothing, not even a run


def _lines(output: Any) -> list[str]:
    return list(output.get("traceback", [])) + [output.get("text", "")]
