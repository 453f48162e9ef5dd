"""Every real-world mail in shared/corpus parses or fails cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import UnparseableMail
from services.processor.parsing import parse_message

REPO = Path(__file__).resolve().parents[3]
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()
_NOT_MAIL = {"README", "README.md", "LICENSE", "LICENSE.md", "LICENSE.txt"}


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.fail(f"mail corpus missing: expected it at {CORPUS} (shared/ beside the repo)")
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in _NOT_MAIL)


@pytest.mark.timeout(120)
def test_corpus_never_raises_anything_but_unparseable() -> None:
    """No mail in the corpus escapes parse_message with an exception other than UnparseableMail."""
    files = _corpus_files()
    assert files, f"no mail files under {CORPUS}"
    parsed, failed = 0, []
    for path in files:
        try:
            parse_message(path.read_bytes())
            parsed += 1
        except UnparseableMail as exc:
            failed.append(f"{path.relative_to(CORPUS)}: {exc.reason}")
    print(f"\ncorpus: {parsed} parsed, {len(failed)} failed of {len(files)}")
    for line in failed:
        print("  failed:", line)
    assert parsed > len(failed)
