"""A section of the HTML report, as every ``report_sections`` implementation returns it (the built-in
sections come through that hook too), and the building blocks a section is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


@dataclass
class Heading:
    """A sub-heading; ``anchor``, when given, is its id in the page (for links to it)."""

    text: str
    kind: str = "heading"
    anchor: str = ""


@dataclass
class Paragraph:
    text: str
    kind: str = "paragraph"


@dataclass
class Note:
    """One line saying why a part of a section has nothing to show."""

    text: str
    kind: str = "note"


@dataclass
class Table:
    """A table whose cells are already text (``nnbench.reporting.html.table`` makes one from a DataFrame)."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    caption: str = ""
    kind: str = "table"
    sort_keys: list[list[str]] = field(default_factory=list)
    """Per row, what each cell sorts by when a reader sorts the table (``""``: its text); empty: the texts."""
    titles: list[list[str]] = field(default_factory=list)
    """Per row, each cell's hover text (``""``: none); empty: no cell has one."""


@dataclass
class Image:
    """A figure as a ``data:image/png;base64,...`` or ``data:image/svg+xml;base64,...`` URI, shown
    ``width`` CSS pixels wide. ``svg`` is the figure as an SVG data URI to download, when ``uri`` is a
    PNG; ``name`` the downloaded file's name (without ``.svg``); ``paper`` the figure drawn again at the
    size of a paper's column, by format (``svg``, ``pdf``), when the report was asked for its figures."""

    uri: str
    alt: str
    width: int
    caption: str = ""
    kind: str = "image"
    svg: str = ""
    name: str = ""
    paper: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Finding:
    """One item of a callout: ``severity`` is ``warning``, ``note`` or ``verdict``; ``link`` is the
    anchor (``#...``) of its evidence in the page, if any."""

    severity: str
    text: str
    kind: str = "finding"
    link: str = ""


Block = Heading | Paragraph | Note | Table | Image | Finding


@dataclass
class ReportSection:
    """A titled section of the HTML report.

    Everything is shown as data, never as markup: ``title``, ``text``, the table's cells and every
    block's text are HTML-escaped, so a section cannot inject HTML or scripts into the report.

    :param title: the section heading.
    :param text: plain text; a blank line starts a new paragraph.
    :param table: a table to show (its index is dropped; the first 200 rows are shown).
    :param figure: a matplotlib figure, embedded as an SVG image (a PNG when the SVG is large) and closed
        after rendering.
    :param blocks: further content, after the text, table and figure: headings, paragraphs, notes,
        tables, images and (in a callout) findings.
    :param anchor: the section's id in the page (made from the title when empty).
    :param style: ``section``, or ``callout``: a box for what a reader must see first, whose
        findings are listed with their severity.
    """

    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    figure: Figure | None = None
    blocks: list[Block] = field(default_factory=list)
    anchor: str = ""
    style: Literal["section", "callout"] = "section"
