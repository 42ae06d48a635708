"""The report's building blocks and their rendering to one self-contained HTML page (jinja2).

Sections are lists of blocks: headings, paragraphs, notes (a section's data is absent), tables and
images. Every string reaches the page through jinja2's autoescaping, and the page's
Content-Security-Policy forbids every fetch except inline ``data:`` images and every script but one:
:data:`PAGE_SCRIPT`, allowed by its SHA-256 hash, which sorts tables by a clicked column and offers each
shown SVG figure for download. Without it (scripts off, print) the page reads the same.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import jinja2
import pandas as pd

from nnbench.contract.release import VERSION
from nnbench.contract.section import Block, Note, Paragraph, ReportSection, Table

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
          headers: Mapping[str, str] | None = None, caption: str = "", limit: int | None = None,
          titles: Mapping[str, Mapping[str, str]] | None = None) -> Table:
    """A :class:`Table` of ``frame``'s columns (``headers`` renames them), cells formatted to text.

    With ``limit``, only the first rows are kept and the caption says how many were left out. ``titles``
    gives hover text by column and value (a version's code and runs, for its label).
    """
    formats, headers = formats or {}, headers or {}
    shown = frame if limit is None else frame.head(limit)
    if len(shown) < len(frame):
        caption = f"{caption} The first {len(shown)} of {len(frame)} rows are shown.".strip()
    columns = list(frame.columns)
    rows = [[default_format(v) if missing(v) else formats.get(c, default_format)(v)
             for c, v in zip(columns, row, strict=True)] for row in shown.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in columns]
    # A formatted number ("1 min 02 s", "< 0.0001") sorts by its value; a missing one sorts last.
    keys = [[sort_key(v) if number else "" for v, number in zip(row, numeric, strict=True)]
            for row in shown.itertuples(index=False)] if any(numeric) else []
    hover = [[str((titles or {}).get(c, {}).get(str(v), "")) for c, v in zip(columns, row, strict=True)]
             for row in shown.itertuples(index=False)] if titles and any(titles.values()) else []
    return Table([headers.get(c, c) for c in columns], rows, numeric, caption, sort_keys=keys, titles=hover)


def sort_key(value: Any) -> str:
    """What a numeric cell sorts by in the browser: its value (``inf`` sorts after every number), or
    ``none`` when it is missing."""
    if missing(value):
        return "none"
    number = float(value)
    return "inf" if number == math.inf else "-inf" if number == -math.inf else repr(number)


def leave_out_empty(sections: list[ReportSection]) -> tuple[list[ReportSection], list[tuple[str, str]]]:
    """The built-in sections with something to show, and ``(title, reason)`` of those whose every block
    is a note (the reasons are the notes). A plugin's section is always shown: its note may be an error."""
    shown, left_out = [], []
    for section in sections:
        notes = [block.text for block in section.blocks if isinstance(block, Note)]
        if section.anchor.startswith("plugin-") or len(notes) < len(section.blocks) or not notes:
            shown.append(section)
        else:
            left_out.append((section.title, "; ".join(notes)))
    return shown, left_out


def paragraphs(text: str) -> list[Paragraph]:
    """Plain text split into paragraphs at blank lines."""
    return [Paragraph(part.strip()) for part in text.split("\n\n") if part.strip()]


@jinja2.pass_context
def _local(context: Any, link: str) -> str:
    """An in-page link (``#anchor``) to the element as its id reads in this rendering (see ``prefix``)."""
    return "#" + context.get("prefix", "") + link[1:] if link.startswith("#") else link


_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("nnbench.reporting", "templates"),
    autoescape=True,  # every string from the store, a grid file or a plugin is data, not markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["local"] = _local


PAGE_SCRIPT = """(function (root) {
  "use strict";
  function key(row, column) {
    var cell = row.cells[column], value = cell ? cell.getAttribute("data-v") : null;
    if (value === null) { return cell ? cell.textContent.trim() : null; }
    return value === "none" ? null : parseFloat(value);
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") { return a === b ? 0 : (a < b ? -1 : 1); }
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  root.querySelectorAll("table.sortable").forEach(function (table) {
    if (table.hasAttribute("data-sorting")) { return; }  /* shown twice in one document: bound once */
    table.setAttribute("data-sorting", "");
    var headers = table.tHead ? Array.prototype.slice.call(table.tHead.rows[0].cells) : [];
    headers.forEach(function (th, column) {
      function sort() {
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        rows.sort(function (a, b) {
          var x = key(a, column), y = key(b, column);
          if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
          return ascending ? compare(x, y) : compare(y, x);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.tabIndex = 0;
      th.title = "Sort by this column";
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
  root.querySelectorAll("a.download[data-image]").forEach(function (link) {
    link.href = link.closest("figure").querySelector("img").src;
    link.hidden = false;
  });
})(document.currentScript ? document.currentScript.parentNode : document);"""
"""The page's one script: sorting and SVG downloads, within the element that holds it (the page's body, or
the inline report's own element). It reads the page and never writes markup from text."""
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(PAGE_SCRIPT.encode()).digest()).decode("ascii")
CONTENT_POLICY = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src '{SCRIPT_HASH}'"


def render(title: str, subtitle: str, sections: list[ReportSection],
           left_out: Sequence[tuple[str, str]] = ()) -> str:
    """The whole report as one HTML document; each section's content is in its ``blocks``.
    ``left_out`` lists the sections that had nothing to show, with the reason, for one line."""
    return _environment.get_template("report.html").render(
        **_content(title, subtitle, sections, left_out), prefix="", policy=CONTENT_POLICY)


def render_fragment(title: str, subtitle: str, sections: list[ReportSection],
                    left_out: Sequence[tuple[str, str]] = ()) -> str:
    """The same report as one element to show inside another page (a notebook's output): no frame, so
    it is as high as its content; its styles apply inside it only, and its ids are its own, so that
    two reports shown in one notebook neither restyle nor link into each other."""
    scope = f"nnbench-{secrets.token_hex(4)}"
    css = (f"#{scope} * {{ {FRAGMENT_RESET} }}\n"
           + scoped_css(_environment.loader.get_source(_environment, "report.css")[0], f"#{scope}"))  # type: ignore[union-attr]
    return _environment.get_template("fragment.html").render(
        **_content(title, subtitle, sections, left_out), prefix=f"{scope}-", scope=scope, css=css)


def _content(title: str, subtitle: str, sections: list[ReportSection],
             left_out: Sequence[tuple[str, str]]) -> dict[str, Any]:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"title": title, "subtitle": subtitle, "sections": sections, "generated": generated,
            "version": VERSION, "left_out": list(left_out), "script": PAGE_SCRIPT}


_ROOTS = (":root", "html", "body")
FRAGMENT_RESET = "color: inherit; font-family: inherit; font-size: inherit; letter-spacing: inherit;"
"""What the inline report's elements take from the report, not from the notebook's own rules for ``p``,
``td`` or ``li`` (the report's own rules are more specific and still apply)."""


def scoped_css(css: str, scope: str) -> str:
    """``css`` restricted to the element that ``scope`` selects (``#nnbench-1a2b``): every selector is
    prefixed with it, and a rule for ``:root``, ``html`` or ``body`` styles that element instead.
    Rules nest inside at-rules such as ``@media print``; comments are dropped."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    out, i = [], 0
    while True:
        start = css.find("{", i)
        if start < 0:
            break
        head, depth, end = css[i:start].strip(), 1, start + 1
        while depth:
            if end >= len(css):
                raise ValueError(f"unbalanced braces in the report's styles after {head!r}")
            depth += {"{": 1, "}": -1}.get(css[end], 0)
            end += 1
        body = css[start + 1 : end - 1]
        if head.startswith("@"):
            out.append(f"{head} {{\n{scoped_css(body, scope)}}}\n")
        else:
            selectors = ", ".join(_scoped_selector(part.strip(), scope) for part in head.split(","))
            out.append(f"{selectors} {{{body}}}\n")
        i = end
    return "".join(out)


def _scoped_selector(selector: str, scope: str) -> str:
    for root in _ROOTS:
        if selector == root or (selector.startswith(root) and selector[len(root)] in " .:[>"):
            return scope + selector[len(root):]
    return f"{scope} {selector}"
