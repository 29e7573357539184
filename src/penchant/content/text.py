"""Plain text from rendered HTML, for the text part of a message that has no text template."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

#: Elements that start and end on a line of their own.
_BLOCK: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
        "table", "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
#: Blocks set apart by an empty line rather than a single line break.
_PARAGRAPH: Final = frozenset(
    {"blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ol", "p", "pre", "table", "ul"}
)
#: Elements whose content is never text a reader sees.
_HIDDEN: Final = frozenset({"head", "noscript", "script", "style", "template", "title"})
#: Link targets not worth printing after the label.
_QUIET_LINK = re.compile(r"^(#|javascript:|data:)", re.IGNORECASE)
_SPACES = re.compile(r"[^\S\n]+")


class _TextParser(HTMLParser):
    """Collects text, line breaks and link targets; entities arrive unescaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._hidden = 0
        self._pre = 0
        self._links: list[tuple[str, int]] = []

    def _breaks(self, count: int) -> None:
        """End the current line and leave `count` line breaks (1, or 2 for an empty line)."""
        have = 0
        for chunk in reversed(self.out):
            stripped = chunk.rstrip("\n")
            have += len(chunk) - len(stripped)
            if stripped:
                break
        else:
            return  # nothing written yet: no leading blank lines
        if have < count:
            self.out.append("\n" * (count - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in _BLOCK:
            self._breaks(2 if tag in _PARAGRAPH else 1)
            if tag == "li":
                self.out.append("- ")
            if tag == "pre":
                self._pre += 1
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.out)))
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.out.append(alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK:
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            self._breaks(2 if tag in _PARAGRAPH else 1)
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = " ".join("".join(self.out[start:]).split())
            href = href.strip()
            if href and not _QUIET_LINK.match(href) and href != label:
                self.out.append(f" ({href})" if label else href)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        self.out.append(data if self._pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """The readable plain text of an HTML fragment or document.

    Block elements (paragraphs, headings, list items, table rows...) become line breaks,
    list items start with "- ", links become "label (url)", images their alt text; scripts,
    styles and the document head are dropped; entities are unescaped; runs of spaces become
    one, lines are trimmed and at most one empty line separates blocks. Text inside
    `<pre>` keeps its line breaks.

    Args:
        html: the HTML to convert (need not be well formed).

    Returns:
        The text, without leading or trailing blank lines.
    """
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(parser.out).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
