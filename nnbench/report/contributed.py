"""Sections that plugins add through the ``report_sections`` hook, each plugin isolated from the rest."""

from __future__ import annotations

import warnings

import pandas as pd
import pluggy
from matplotlib.figure import Figure

from nnbench.plugins import PluginLoadWarning
from nnbench.report import plots
from nnbench.report.html import Block, Note, Section, paragraphs, table
from nnbench.report.section import ReportSection
from nnbench.report.sections import ReportData

PLUGIN_TABLE_ROWS = 200


def plugin_sections(pm: pluggy.PluginManager, data: ReportData) -> list[Section]:
    """Call every ``report_sections`` implementation; a plugin that raises or returns something other
    than a list of :class:`ReportSection` gets a note (and a warning) instead of its sections."""
    arguments = {"trials": data.trials, "epochs": data.epochs, "runs": data.runs}
    sections: list[Section] = []
    for impl in pm.hook.report_sections.get_hookimpls():  # in registration order
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            contributed = impl.function(*(arguments[arg] for arg in impl.argnames)) or []
            if not isinstance(contributed, list | tuple):
                raise TypeError(
                    f"report_sections must return a list of ReportSection, not {type(contributed).__name__}")
            built = [_section(item, name, f"plugin-{len(sections) + i + 1}") for i, item in enumerate(contributed)]
        except Exception as exc:  # one broken plugin must not take the report down
            message = f"plugin {name!r} failed to build its report sections: {type(exc).__name__}: {exc}"
            warnings.warn(message, PluginLoadWarning, stacklevel=2)
            built = [Section(f"plugin-{len(sections) + 1}", f"Plugin {name}", [Note(message)])]
        sections.extend(built)
    if not sections:
        sections.append(Section("plugins", "Plugin sections", [Note("no plugin contributed a report section")]))
    return sections


def _section(item: object, plugin: str, anchor: str) -> Section:
    if not isinstance(item, ReportSection):
        raise TypeError(f"report_sections returned a {type(item).__name__}, not a ReportSection")
    blocks: list[Block] = [Note(f"contributed by plugin {plugin}"), *paragraphs(str(item.text))]
    if item.table is not None:
        if not isinstance(item.table, pd.DataFrame):
            raise TypeError(f"ReportSection.table must be a pandas DataFrame, not {type(item.table).__name__}")
        blocks.append(table(item.table.reset_index(drop=True), limit=PLUGIN_TABLE_ROWS))
    if item.figure is not None:
        if not isinstance(item.figure, Figure):
            raise TypeError(f"ReportSection.figure must be a matplotlib Figure, not {type(item.figure).__name__}")
        blocks.append(plots.to_image(item.figure, f"figure from plugin {plugin}: {item.title}"))
    return Section(anchor, str(item.title), blocks)
