"""The mail corpora that parsing and processing tests run over, with the same checks.

``own``: the hard cases this repository generates and ships (``tests/fixtures/mail/
generate.py``), always present. ``shared``: the real-world corpus of other projects' test
mail, kept outside the repository in ``../shared/corpus``. A clone without it skips the
shared runs with the reason; ``CI=true`` makes its absence a failure, so CI cannot pass
without it by accident.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OWN_CORPUS = REPO / "tests" / "fixtures" / "mail" / "corpus"
SHARED_CORPUS = REPO.parent / "shared" / "corpus"
CORPORA = ("own", "shared")
_NOT_MAIL = {"README", "README.md", "LICENSE", "LICENSE.md", "LICENSE.txt"}


def mail_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name not in _NOT_MAIL and not p.name.startswith(".")
    )


def corpus_root(corpus: str) -> Path:
    """The folder of ``corpus`` ("own" or "shared"); skips (or, under CI, fails) the test
    when the shared corpus is not beside the repository."""
    if corpus == "own":
        return OWN_CORPUS
    if not SHARED_CORPUS.is_dir():
        reason = f"shared mail corpus not found at {SHARED_CORPUS} (../shared/corpus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(f"{reason}; the repository's own corpus still runs (CI=true requires it)")
    return SHARED_CORPUS


def corpus_files(corpus: str) -> list[Path]:
    root = corpus_root(corpus)
    files = mail_files(root)
    assert files, f"no mail files under {root}"
    return files
