"""Every mail of both corpora parses or fails cleanly; the repository's own hard cases
(charsets, RFC 2231, TNEF, S/MIME, nested, broken boundaries, calendar, e-invoices) each
give what a reader of that mail must get."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import UnparseableMail
from services.processor.parsing import ParsedMail, parse_message
from tests.fixtures.mail.generate import CASES, Case, write
from tests.support.corpus import CORPORA, OWN_CORPUS, corpus_files, corpus_root


@pytest.mark.timeout(120)
@pytest.mark.parametrize("corpus", CORPORA)
def test_corpus_never_raises_anything_but_unparseable(corpus: str) -> None:
    """No mail in the corpus escapes parse_message with an exception other than UnparseableMail."""
    root = corpus_root(corpus)
    files = corpus_files(corpus)
    parsed, failed = 0, []
    for path in files:
        try:
            parse_message(path.read_bytes())
            parsed += 1
        except UnparseableMail as exc:
            failed.append(f"{path.relative_to(root)}: {exc.reason}")
    print(f"\n{corpus} corpus: {parsed} parsed, {len(failed)} failed of {len(files)}")
    for line in failed:
        print("  failed:", line)
    assert parsed > len(failed)


def _summary(mail: ParsedMail) -> tuple[object, ...]:
    return (
        mail.subject,
        mail.from_,
        mail.text_body,
        sorted((a.filename, a.sha256) for a in mail.attachments),
        sorted(i.format for i in mail.invoices),
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hard_case_gives_what_its_reader_needs(case: Case) -> None:
    """Subject, sender, text, attachment names and recognised invoices come out decoded."""
    expect = case.expect
    mail = parse_message((OWN_CORPUS / case.name).read_bytes())
    if expect.subject is not None:
        assert mail.subject == expect.subject
    if expect.from_ is not None:
        assert mail.from_ is not None
        assert mail.from_.replace('"', "") == expect.from_
    if expect.text_contains is not None:
        assert expect.text_contains in mail.text_body
    names = {a.filename for a in mail.attachments}
    assert set(expect.attachments) <= names, names
    assert all(a.content for a in mail.attachments)
    assert sorted(i.format for i in mail.invoices) == sorted(expect.invoice_formats)


def test_the_committed_corpus_is_what_generate_writes(tmp_path: Path) -> None:
    """tests/fixtures/mail/corpus/ holds exactly the generator's cases, byte for byte (the
    freshly signed S/MIME cases: parsed alike)."""
    fresh = {p.name: p for p in write(tmp_path)}
    assert {p.name for p in OWN_CORPUS.iterdir()} == set(fresh)
    for case in CASES:
        committed = (OWN_CORPUS / case.name).read_bytes()
        regenerated = fresh[case.name].read_bytes()
        if case.signed:
            assert _summary(parse_message(committed)) == _summary(parse_message(regenerated))
        else:
            assert committed == regenerated, f"{case.name}: rerun tests.fixtures.mail.generate"
