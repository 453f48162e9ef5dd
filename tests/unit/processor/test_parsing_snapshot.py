"""The parser gives, mail by mail over both corpora, what the parser before issue #19's
faster parse gave: the committed snapshot (tests/support/parse_snapshot.py) holds those
outputs as hashes. A change of parser that changes a document fails here, naming the mail
and the field; a difference accepted on purpose goes into ACCEPTED with its reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.corpus import CORPORA, corpus_files, corpus_root
from tests.support.parse_snapshot import SNAPSHOT, outcome

# (corpus, mail, field) -> why the new value is accepted. Empty: no output differs.
ACCEPTED: dict[tuple[str, str, str], str] = {}


def _differences(corpus: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    if old.keys() != new.keys():
        return [f"{corpus}/{name}: outcome {sorted(old)} became {sorted(new)}: {new}"]
    if "unparseable" in old:
        same = old["unparseable"] == new["unparseable"]
        return [] if same else [f"{corpus}/{name}: refused for {new['unparseable']!r}"]
    before, after = old["parsed"], new["parsed"]
    return [
        f"{corpus}/{name}: {field}: {before.get(field)!r} -> {after.get(field)!r}"
        for field in sorted(set(before) | set(after))
        if before.get(field) != after.get(field) and (corpus, name, field) not in ACCEPTED
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("corpus", CORPORA)
def test_every_mail_parses_as_the_snapshot_says(corpus: str) -> None:
    """Attachment names, bytes (SHA-256), bodies, headers, invoice fields and defects are
    what the committed snapshot holds for each mail."""
    root = corpus_root(corpus)
    expected = json.loads(SNAPSHOT.read_text())[corpus]
    files = corpus_files(corpus)
    names = {str(p.relative_to(root)) for p in files}
    assert names == set(expected), (
        "corpus and snapshot list different mails; after adding a mail on purpose, record"
        " its current outputs: python -m tests.support.parse_snapshot"
    )
    found = []
    for path in files:
        name = str(path.relative_to(root))
        found += _differences(corpus, name, expected[name], outcome(path.read_bytes()))
    assert not found, "\n".join(found)
