"""A plain-text rendering of an HTML body, for search and for readers without HTML.

libxml2's HTML parser (through lxml) reads the tags, in time linear in the input: the
standard library's ``html.parser`` is quadratic on input such as ``</`` repeated (a
391 KiB mail of it took 11 s of CPU). The renderer only has to keep the words and the
line structure, not produce Markdown, so it listens to the parser's events (a parser
target) instead of building a tree.
"""

from __future__ import annotations

import re

from lxml import etree

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


class _Renderer:
    """A parser target (https://lxml.de/parsing.html#the-target-parser-interface)."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self._skipping = 0

    def start(self, tag: str, attrib: object) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in _BLOCK:
            self.chunks.append("\n- " if tag == "li" else "\n")
        elif tag in {"td", "th"}:
            self.chunks.append("\t")

    def end(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK:
            self.chunks.append("\n")

    def data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(_RUNS.sub(" ", data.replace("\n", " ")))

    def comment(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def longer_than(html: str, limit: int) -> bool:
    """Whether ``html`` is over ``limit`` bytes as UTF-8 (encoded only when it may be)."""
    return len(html) > limit // 4 and len(html.encode()) > limit


def html_to_text(html: str, limit: int | None = None) -> str:
    """Render ``html`` as text: blocks become lines, scripts and styles vanish.

    With ``limit``, only the first ``limit`` bytes (UTF-8) of the HTML are rendered, and
    the text ends with a line saying it was cut.
    """
    cut = limit is not None and longer_than(html, limit)
    if cut:
        html = html.encode()[:limit].decode(errors="ignore")
    renderer = _Renderer()
    parser = etree.HTMLParser(target=renderer, no_network=True, remove_comments=True)
    try:
        parser.feed(html)
        parser.close()
    except etree.Error:  # what was read before the parser gave up is still text
        pass
    text = "".join(renderer.chunks)
    lines = [line.strip() for line in text.split("\n")]
    rendered = _BLANKS.sub("\n\n", "\n".join(lines)).strip()
    if cut:
        rendered += f"\n\n[HTML body longer than {limit} bytes: text rendered from its start only]"
    return rendered
