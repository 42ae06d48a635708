"""Every section of the report comes through the ``report_sections`` hook (the built-in ones first);
each plugin is isolated from the rest, and what it returns is checked and turned into blocks."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pandas as pd
import pluggy
from matplotlib.figure import Figure

from nnbench.contract.section import Block, Finding, Heading, Image, Note, Paragraph, ReportSection, Table
from nnbench.loading.plugins import BUILTIN_PLUGINS, PluginLoadWarning
from nnbench.reporting import plots
from nnbench.reporting.html import paragraphs, table

PLUGIN_TABLE_ROWS = 200
BLOCK_TYPES = (Heading, Paragraph, Note, Table, Image, Finding)
IMAGE_URI = re.compile(r"data:image/(png|svg\+xml);base64,[A-Za-z0-9+/=]*")
SVG_URI = re.compile(r"data:image/svg\+xml;base64,[A-Za-z0-9+/=]*")


def report_sections(pm: pluggy.PluginManager, arguments: dict[str, Any]) -> list[ReportSection]:
    """Call every ``report_sections`` implementation with the ``arguments`` it asks for; a plugin that
    raises or returns something other than a list of :class:`ReportSection` gets a note (and a
    warning) instead of its sections. Sections of third-party plugins say which plugin added them."""
    sections: list[ReportSection] = []
    for impl in pm.hook.report_sections.get_hookimpls():  # in registration order: built-ins first
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        builtin = name in BUILTIN_PLUGINS
        try:
            contributed = impl.function(*(arguments[arg] for arg in impl.argnames)) or []
            if not isinstance(contributed, list | tuple):
                raise TypeError(
                    f"report_sections must return a list of ReportSection, not {type(contributed).__name__}")
            numbered = sum(s.anchor.startswith("plugin-") for s in sections)
            built = [_checked(item, None if builtin else name, numbered + i + 1) for i, item in enumerate(contributed)]
        except Exception as exc:  # one broken plugin must not take the report down
            message = f"plugin {name!r} failed to build its report sections: {type(exc).__name__}: {exc}"
            warnings.warn(message, PluginLoadWarning, stacklevel=2)
            numbered = sum(s.anchor.startswith("plugin-") for s in sections)
            built = [ReportSection(f"Plugin {name}", blocks=[Note(message)], anchor=f"plugin-{numbered + 1}")]
        sections.extend(built)
    return sections


def _checked(item: Any, plugin: str | None, position: int) -> ReportSection:
    """``item`` as a section whose content is all in its blocks (``plugin``: who added it, when not built in)."""
    if not isinstance(item, ReportSection):
        raise TypeError(f"report_sections returned a {type(item).__name__}, not a ReportSection")
    blocks: list[Block] = [Note(f"contributed by plugin {plugin}")] if plugin else []
    blocks += paragraphs(str(item.text))
    if item.table is not None:
        if not isinstance(item.table, pd.DataFrame):
            raise TypeError(f"ReportSection.table must be a pandas DataFrame, not {type(item.table).__name__}")
        blocks.append(table(item.table.reset_index(drop=True), limit=PLUGIN_TABLE_ROWS))
    if item.figure is not None:
        if not isinstance(item.figure, Figure):
            raise TypeError(f"ReportSection.figure must be a matplotlib Figure, not {type(item.figure).__name__}")
        blocks.append(plots.to_image(item.figure, f"figure from {f'plugin {plugin}' if plugin else 'nnbench'}: "
                                                  f"{item.title}"))
    for block in item.blocks:
        if not isinstance(block, BLOCK_TYPES):
            raise TypeError(f"ReportSection.blocks holds a {type(block).__name__}; blocks are "
                            f"{', '.join(t.__name__ for t in BLOCK_TYPES)}")
        if isinstance(block, Image) and not IMAGE_URI.fullmatch(block.uri):
            raise TypeError("an Image block's uri must be a base64 data: URI of a PNG or SVG image")
        if isinstance(block, Image) and block.svg and not SVG_URI.fullmatch(block.svg):
            raise TypeError("an Image block's svg must be a base64 data: URI of an SVG image")
        blocks.append(block)
    # A plugin's section is numbered, so that its anchor can never clash with another section's.
    anchor = f"plugin-{position}" if plugin else item.anchor or re.sub(r"[^a-z0-9]+", "-", str(item.title).lower())
    style = item.style if item.style in ("section", "callout") else "section"
    return ReportSection(str(item.title), blocks=blocks, anchor=anchor, style=style)
