"""Reading a report as a reader sees it, for the report tests: section by section."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class Outline(HTMLParser):
    """What a reader sees per section: headings, notes, tables, images and text; plus any tag or
    attribute that could run code."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None
        self.dangerous: list[str] = []
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("script", "iframe", "object", "embed", "link") or any(a.startswith("on") for a in attributes):
            self.dangerous.append(tag)
        if tag == "img" and not (attributes.get("src") or "").startswith("data:image/png;base64,"):
            self.dangerous.append(f"img {attributes.get('src')}")
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
        if tag in ("h2", "h3", "p"):
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self.current is None:
            return
        self.current["text"] += data
        if self._capture == "h2":
            self.current["h2"] += data
        elif self._capture == "h3":
            self.current["h3"].append(data)
        elif self._capture == "note":
            self.current["notes"].append(data)


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser
