"""docs/tutorial.ipynb runs, cell by cell, in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

TUTORIAL = Path(__file__).parents[1] / "docs" / "tutorial.ipynb"


@pytest.mark.slow
def test_the_tutorial_notebook_runs_in_a_jupyter_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("NNBENCH_PLUGINS", raising=False)  # the notebook installs a plugin and loads it by name
    notebook = nbformat.read(TUTORIAL, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = {i: cell.get("outputs", []) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for cell in outputs.values()
                     for o in cell)
    assert "test RMSE after 20 epochs" in text
    assert "36 trials: 36 to train" in text  # the simple net is not repeated per activation: 27 fnn + 9 simple
    assert "18 to train, 18 already stored" in text  # the edited activation is trained again, the rest reused
    assert "has no source to read" not in text  # classes defined in cells are identified by their source
    assert "['relu', 'squareplus']" in text
    report = [o for cell in outputs.values() for o in cell if "text/html" in o.get("data", {})]
    assert any("nnbench report" in o["data"]["text/html"] for o in report)
    assert (tmp_path / "tutorial.db").exists()
