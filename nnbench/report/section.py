"""The section a plugin adds to the report through the ``report_sections`` hook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


@dataclass
class ReportSection:
    """A titled section of the HTML report, contributed by a plugin.

    Everything is shown as data, never as markup: ``title``, ``text`` and the table's cells are
    HTML-escaped, so a plugin cannot inject HTML or scripts into the report.

    :param title: the section heading.
    :param text: plain text; a blank line starts a new paragraph.
    :param table: a table to show (its index is dropped; the first 200 rows are shown).
    :param figure: a matplotlib figure, embedded as a PNG image and closed after rendering.
    """

    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    figure: Figure | None = None
