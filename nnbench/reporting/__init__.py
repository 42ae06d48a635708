"""The HTML comparison report: one self-contained page built from one or more stored runs.

``build_report(store, run_ids)`` reads the runs, computes every section's frame with
:mod:`nnbench.analysis`, draws the figures with seaborn and renders one HTML page with jinja2. The page
opens on its findings, loads nothing from the network and runs no script but its own (sorting tables,
offering SVG downloads). Built-in sections with nothing to show are left out and named in one line.
Plugins add sections through the ``report_sections`` hook by returning :class:`ReportSection` objects.
Importing this package is cheap: pandas, scipy and the plotting libraries load when a report is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from nnbench.contract.errors import NNBenchError
from nnbench.contract.section import ReportSection
from nnbench.files import write_text_whole
from nnbench.loading.plugins import make_plugin_manager

if TYPE_CHECKING:
    from nnbench.loading.plugins import PluginManager
    from nnbench.storage.store import ResultStore  # a report reads a store it is given

__all__ = ["Report", "ReportSection", "build_report", "write_run_report"]


@dataclass(frozen=True)
class Report:
    """A rendered report: ``html`` is the whole page; :attr:`fragment` the same report as one element,
    which a notebook shows inline (``_repr_html_``): as high as its content, its styles applying inside
    it only. ``inline`` renders the fragment, once and only when it is first shown."""

    html: str
    inline: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    figures: tuple[Path, ...] = ()
    """The figure files written for a paper (``build_report(..., figures=DIR)``), SVG and PDF of each."""

    @cached_property
    def fragment(self) -> str:
        """The report as one element to show inside another page; ``""`` for a page made elsewhere."""
        return self.inline() if self.inline is not None else ""

    def __repr__(self) -> str:
        # A short text form: a notebook stores it beside the HTML, which is already there once.
        return f"<nnbench report: {len(self.html) / 1024:,.0f} KiB of HTML; .save(path) writes it>"

    def _repr_html_(self) -> str:
        if self.fragment:
            return self.fragment
        # A page made elsewhere: a frame keeps its styles out of the notebook.
        return (f'<iframe srcdoc="{escape(self.html, quote=True)}" sandbox '
                'style="width: 100%; height: 800px; border: 1px solid #ddd"></iframe>')

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (creating its folders) and return the path. The page is written
        whole or not at all: a report already at ``path`` is replaced only by a complete one, and a
        full disk leaves it as it was."""

        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_whole(path, self.html)
        except OSError as exc:

            kept = "; the report already there is kept" if path.is_file() else ""
            raise NNBenchError(f"cannot write the report to {path}: {exc.strerror or exc}{kept}; free some space "
                               "or give another path (-o, --report-dir)") from None
        return path


def build_report(store: ResultStore, run_ids: Sequence[str], plugin_manager: PluginManager | None = None,
                 rope: Mapping[str, float] | None = None, *, alpha: float = 0.05,
                 version_names: Mapping[str, str] | None = None, figures: str | Path | None = None) -> Report:
    """Build the report of ``run_ids`` (ids as stored; see ``ResultStore.resolve_runs``).

    :param plugin_manager: whose ``report_sections`` hook makes the sections (the built-in ones
        included); ``None`` loads the plugins the way ``nnbench`` does (``make_plugin_manager()``).
    :param rope: half-widths of practical equivalence by task, metric or ``*``
        (``nnbench.analysis.rope.parse_rope(...).to_dict()``); ``None``: each metric's default.
    :param alpha: the family-wise error rate of the verdicts' "better" and "worse" claims, per axis.
    :param version_names: names for versions of a component's code, by run id (a prefix is enough) or
        code (a prefix of its hash): ``{"20260105-0930": "before the fix"}``; default ``cnn v1``, ``cnn v2``.
    :param figures: a folder to write every figure of the report into, as SVG and PDF sized for a
        paper's column (:func:`nnbench.reporting.figures.write_figures`); the report lists them in
        :attr:`Report.figures`.
    """
    # pandas, scipy and seaborn load with the first report, not with the package
    from nnbench.analysis import frames as analysis
    from nnbench.reporting import contributed, html, plots  # as above
    from nnbench.reporting.figures import write_figures  # as above

    if not 0 < alpha < 1:
        raise NNBenchError(f"alpha is an error rate between 0 and 1 (0.05), not {alpha}")
    run_ids = list(run_ids)
    names = dict(version_names or {})
    trials = analysis.with_variants(store.trials(run_ids), names)
    arguments = {"trials": trials, "epochs": store.epochs(run_ids), "runs": store.runs(run_ids),
                 "skipped": store.skipped(run_ids), "micro": store.micro(), "rope": dict(rope or {}),
                 "alpha": float(alpha), "version_names": names}
    pm = plugin_manager or make_plugin_manager()
    with plots.paper_copies(figures is not None):
        sections = contributed.report_sections(pm, arguments)
    shown, left_out = html.leave_out_empty(sections)
    written: list[Path] = []
    if figures is not None:
        written = write_figures(shown, Path(figures))
    title = "nnbench report: " + (", ".join(run_ids) if len(run_ids) <= 3 else f"{len(run_ids)} runs")
    tasks = ", ".join(dict.fromkeys(trials["task"])) or "no tasks"
    subtitle = f"{len(trials):,} trials on {tasks}; stored in {store.path}"
    return Report(html.render(title, subtitle, shown, left_out),
                  lambda: html.render_fragment(title, subtitle, shown, left_out), tuple(written))


def write_run_report(store: ResultStore, run_ids: Sequence[str], out_dir: Path,
                     plugin_manager: PluginManager | None = None, rope: Mapping[str, float] | None = None) -> Path:
    """Build the report of ``run_ids`` and write it to ``out_dir/index.html``; return that path."""
    return build_report(store, run_ids, plugin_manager, rope).save(Path(out_dir) / "index.html")
