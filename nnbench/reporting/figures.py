"""The report's figures as files for a paper: every figure as SVG and PDF, sized for a column.

``nnbench report --figures DIR`` (and ``build_report(..., figures=DIR)``) draws each figure a second
time at the width of a paper's column (:func:`nnbench.reporting.plots.paper_copy`) and writes it here,
named by its place in the report, its section and what it shows
(``03-comparisons-diagram-of-activation.pdf``). A figure a plugin gave as an image, not as a matplotlib
figure, has nothing to draw again and is not written.
"""

from __future__ import annotations

from pathlib import Path

from nnbench.contract.errors import NNBenchError
from nnbench.contract.section import Image, ReportSection


def write_figures(sections: list[ReportSection], folder: Path) -> list[Path]:
    """Write the paper copies of every figure of ``sections`` into ``folder`` (made if missing); return
    the files written, in the report's order."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NNBenchError(f"cannot make the figures folder {folder}: {exc.strerror or exc}; give another "
                           "(--figures DIR)") from None
    written: list[Path] = []
    number = 0
    for section in sections:
        for block in section.blocks:
            if not isinstance(block, Image) or not block.paper:
                continue
            number += 1
            stem = f"{number:02d}-{section.anchor or 'section'}-{block.name or 'figure'}"[:120]
            for kind, data in sorted(block.paper.items()):
                path = folder / f"{stem}.{kind}"
                try:
                    path.write_bytes(data)
                except OSError as exc:
                    raise NNBenchError(f"cannot write the figure {path}: {exc.strerror or exc}") from None
                written.append(path)
    return written
