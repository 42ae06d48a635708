"""Reading a report as a reader sees it, for the report tests: section by section."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from nnbench.reporting.html import PAGE_SCRIPT

IMAGE_PREFIXES = ("data:image/png;base64,", "data:image/svg+xml;base64,")


class Outline(HTMLParser):
    """What a reader sees per section: headings, notes, tables, images and text; the line of sections
    left out; the findings; plus any tag or attribute that could run code (the page's own script, and
    only it, is allowed)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None
        self.dangerous: list[str] = []
        self.left_out = ""
        self.left_out_reasons: list[str] = []
        self.findings: list[str] = []
        self.scripts: list[str] = []
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("iframe", "object", "embed", "link") or any(a.startswith("on") for a in attributes):
            self.dangerous.append(tag)
        if tag == "script":
            self.scripts.append("")
            self._capture = "script"
        if tag == "img" and not (attributes.get("src") or "").startswith(IMAGE_PREFIXES):
            self.dangerous.append(f"img {attributes.get('src')}")
        if tag == "p" and attributes.get("class") == "left-out":
            self._capture = "left-out"
        elif tag == "span" and self._capture == "left-out":
            self.left_out_reasons.append(attributes.get("title") or "")
        if tag == "aside" and attributes.get("id") == "findings":
            self._capture = "findings"
        elif tag == "li" and self._capture == "findings":
            self.findings.append("")
        if tag == "section":
            self.current = self.sections[attributes["id"] or ""] = {
                "h2": "", "h3": [], "notes": [], "tables": 0, "images": 0, "text": ""}
        elif self.current is not None:
            if tag in ("h2", "h3"):
                self._capture = tag
            elif tag == "p" and attributes.get("class") == "note":
                self._capture = "note"
            elif tag == "table":
                self.current["tables"] += 1
            elif tag == "img":
                self.current["images"] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.current = None
        if self._capture == "script":
            if tag == "script":
                if self.scripts[-1] != PAGE_SCRIPT:
                    self.dangerous.append("script")
                self._capture = None
            return
        if self._capture == "findings":
            if tag == "aside":
                self._capture = None
            return
        if tag in ("h2", "h3", "p"):
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture == "script":
            self.scripts[-1] += data
            return
        if self._capture == "left-out":
            self.left_out += data
        if self._capture == "findings" and self.findings:
            self.findings[-1] += data
        if self.current is None:
            return
        self.current["text"] += data
        if self._capture == "h2":
            self.current["h2"] += data
        elif self._capture == "h3":
            self.current["h3"].append(data)
        elif self._capture == "note":
            self.current["notes"].append(data)


    def left_out_sections(self) -> dict[str, str]:
        """The sections left out for having nothing to show: title -> reason."""
        titles = self.left_out.removeprefix("Nothing to show, so left out: ").rstrip(".").split(", ")
        return dict(zip(titles, self.left_out_reasons, strict=True)) if self.left_out else {}


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser
