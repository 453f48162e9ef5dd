"""A plain-text rendering of an HTML body, for search and for readers without HTML.

Written on the standard library's tokenizer rather than a converter package: it only has
to keep the words and the line structure, not produce Markdown.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BLOCK = frozenset(
    {
        "p",
        "div",
        "table",
        "tr",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "section",
        "article",
        "header",
        "footer",
        "hr",
        "li",
        "dd",
        "dt",
    }
)
_BLANKS = re.compile(r"\n{3,}")
_RUNS = re.compile(r"[ \t\r\f\v]+")


class _Renderer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in _BLOCK:
            self.chunks.append("\n- " if tag == "li" else "\n")
        elif tag in {"td", "th"}:
            self.chunks.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(_RUNS.sub(" ", data.replace("\n", " ")))


def html_to_text(html: str) -> str:
    """Render ``html`` as text: blocks become lines, scripts and styles vanish."""
    renderer = _Renderer()
    renderer.feed(html)
    renderer.close()
    text = "".join(renderer.chunks)
    lines = [line.strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
