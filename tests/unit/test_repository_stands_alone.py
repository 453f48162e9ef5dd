"""The repository cites only what it holds: docs/architecture.md (by section) and primary
sources, never the design briefs it was first written from, which a clone does not have."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO / "docs" / "architecture.md"
# Spelled in parts so that this file does not cite them itself.
OUTSIDE_DOCUMENTS = tuple(name + ".md" for name in ("DESIGN", "MS365", "OPS"))
CITATION = re.compile(r"docs/architecture\.md#([a-z0-9-]+)")
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", "results"}


def _text_files() -> Iterator[tuple[Path, str]]:
    for path in REPO.rglob("*"):
        relative = path.relative_to(REPO)
        if any(
            part in SKIPPED_DIRS or part.startswith(".") or part.endswith(".egg-info")
            for part in relative.parts[:-1]
        ):
            continue
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            yield relative, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def test_no_file_cites_a_document_outside_the_repository() -> None:
    """Docs and comments point at docs/architecture.md, not at files a clone lacks."""
    offenders = [
        f"{relative}: {name}"
        for relative, text in _text_files()
        for name in OUTSIDE_DOCUMENTS
        if name in text
    ]
    assert offenders == []


def test_every_cited_architecture_section_exists() -> None:
    """A ``docs/architecture.md#<section>`` in code or docs leads to a section that exists."""
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', ARCHITECTURE.read_text()))
    assert len(anchors) > 20
    missing = [
        f"{relative}: #{anchor}"
        for relative, text in _text_files()
        for anchor in CITATION.findall(text)
        if anchor not in anchors
    ]
    assert missing == []
