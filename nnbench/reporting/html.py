"""The report's building blocks and their rendering to one self-contained HTML page (jinja2).

Sections are lists of blocks: headings, paragraphs, notes (a section's data is absent), tables and
images. Every string reaches the page through jinja2's autoescaping, and the page's
Content-Security-Policy forbids scripts and every fetch except inline ``data:`` images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
import pandas as pd

from nnbench import __version__
from nnbench.contract.section import Block, Paragraph, ReportSection, Table

Formatter = Callable[[Any], str]


def new_section(anchor: str, title: str, blocks: list[Block] | None = None) -> ReportSection:
    """A built-in section: its anchor in the page, its title and its blocks."""
    return ReportSection(title, blocks=blocks if blocks is not None else [], anchor=anchor)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def default_format(value: Any) -> str:
    if missing(value):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(frame: pd.DataFrame, formats: Mapping[str, Formatter] | None = None,
          headers: Mapping[str, str] | None = None, caption: str = "", limit: int | None = None) -> Table:
    """A :class:`Table` of ``frame``'s columns (``headers`` renames them), cells formatted to text.

    With ``limit``, only the first rows are kept and the caption says how many were left out.
    """
    formats, headers = formats or {}, headers or {}
    shown = frame if limit is None else frame.head(limit)
    if len(shown) < len(frame):
        caption = f"{caption} The first {len(shown)} of {len(frame)} rows are shown.".strip()
    columns = list(frame.columns)
    rows = [[default_format(v) if missing(v) else formats.get(c, default_format)(v)
             for c, v in zip(columns, row, strict=True)] for row in shown.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in columns]
    return Table([headers.get(c, c) for c in columns], rows, numeric, caption)


def paragraphs(text: str) -> list[Paragraph]:
    """Plain text split into paragraphs at blank lines."""
    return [Paragraph(part.strip()) for part in text.split("\n\n") if part.strip()]


_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("nnbench.reporting", "templates"),
    autoescape=True,  # every string from the store, a grid file or a plugin is data, not markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(title: str, subtitle: str, sections: list[ReportSection]) -> str:
    """The whole report as one HTML document; each section's content is in its ``blocks``."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _environment.get_template("report.html").render(
        title=title, subtitle=subtitle, sections=sections, generated=generated, version=__version__)
