"""A plain Content-Type or Content-Disposition is kept as text by the bounded policy
(policies._PLAIN_MIME): every Message method the parser uses must read from that text
what it read from the modern header object, value by value and part by part over both
corpora; any other value is still parsed into a header object."""

from __future__ import annotations

import email.parser
import re
from email.message import EmailMessage, Message
from typing import Any

import pytest

from services.processor.parsing import policies
from services.processor.parsing.model import ParseLimits
from tests.support.corpus import CORPORA, corpus_files

_PLAIN = [
    ("Content-Type", "application/pdf"),
    ("Content-Type", 'text/plain; charset="utf-8"'),
    ("Content-Type", "text/plain; charset=ISO-8859-1; format=flowed"),
    ("Content-Type", 'multipart/mixed; boundary="===============8402589604207209342=="'),
    ("Content-Type", 'multipart/alternative;boundary="b1" '),
    ("Content-Type", "multipart/mixed; boundary=----=_Part_1_2.3"),  # once quoted (policies)
    ("Content-Type", 'Application/PDF; name="Factura 1000.pdf"'),
    ("Content-Type", 'application/octet-stream; name="semi;colon.pdf"'),
    ("Content-Disposition", 'attachment; filename="factura-1000.pdf"'),
    ("Content-Disposition", "attachment; filename=factura.pdf"),
    ("Content-Disposition", 'Attachment; FileName="mixed case.pdf"'),
    ("Content-Disposition", 'attachment; filename="  padded.pdf  "'),
    ("Content-Disposition", 'attachment; filename=""'),
    ("Content-Disposition", 'attachment; creation-date="filename=decoy"; filename="real.pdf"'),
    (
        "Content-Disposition",
        'attachment; filename="x.pdf"; size=12345;'
        ' creation-date="Mon, 01 Jan 2024 10:00:00 GMT"; modification-date="Mon, 01 Jan 2024"',
    ),
    ("Content-Disposition", "inline"),
]
_NOT_PLAIN = [
    ("Content-Type", "text/plain; charset=utf-8 (comment)"),
    ("Content-Type", 'multipart/alternative; boundary="b1";'),
    ("Content-Type", "application/pdf; name*=utf-8''%C3%A9t%C3%A9.pdf"),
    ("Content-Type", 'application/pdf; name="=?utf-8?q?caf=C3=A9?=.pdf"'),
    ("Content-Type", 'text/plain; charset="utf\\"8"'),
    ("Content-Type", "text/plain;\r\n charset=utf-8"),
    ("Content-Disposition", "attachment; filename=This is a test.txt"),
    ("Content-Disposition", 'attachment; filename="caf\udcc3\udca9.pdf"'),
    ("Content-Disposition", "attachment; filename*0=a; filename*1=b"),
    ("Content-Disposition", 'attachment; filename="first.pdf"; FILENAME="second.pdf"'),
]


def _reads(message: Message) -> tuple[Any, ...]:
    """Everything the parser and the walk read from these two headers."""
    return (
        message.get_content_type(),
        message.get_content_maintype(),
        message.get_params(),
        message.get_params(header="content-disposition"),
        message.get_boundary(),
        message.get_content_charset(),
        message.get_filename(),
        message.get_param("name"),
    )


def _part(name: str, value: str) -> EmailMessage:
    message = EmailMessage(policy=policies.modern(ParseLimits()))
    message._headers.append((name, value))  # as the parser stores it
    return message


def _reads_both_ways(
    monkeypatch: pytest.MonkeyPatch, read: Any, *args: Any
) -> tuple[object, object]:
    kept_as_text = read(*args)
    with monkeypatch.context() as patched:
        patched.setattr(policies, "_PLAIN_MIME", re.compile(r"(?!)"))
        parsed = read(*args)
    return kept_as_text, parsed


@pytest.mark.parametrize(("name", "value"), _PLAIN)
def test_a_plain_value_is_kept_as_text_and_reads_the_same(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    assert type(_part(name, value)[name]) is str
    kept, parsed = _reads_both_ways(monkeypatch, lambda: _reads(_part(name, value)))
    assert kept == parsed


@pytest.mark.parametrize(("name", "value"), _NOT_PLAIN)
def test_any_other_value_is_still_parsed(name: str, value: str) -> None:
    assert type(_part(name, value)[name]) is not str


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_corpus_part_reads_the_same(monkeypatch: pytest.MonkeyPatch, corpus: str) -> None:
    """Each part of each mail, parsed by the feed parser with the bounded policy, reads
    the same with plain values kept as text as with every value parsed."""

    def read_all(raw: bytes) -> list[tuple[Any, ...]]:
        policy = policies.modern(ParseLimits())
        tree = email.parser.BytesParser(policy=policy).parsebytes(raw)
        return [_reads(part) for part in tree.walk()]

    differing = []
    for path in corpus_files(corpus):
        raw = path.read_bytes()
        kept, parsed = _reads_both_ways(monkeypatch, read_all, raw)
        if kept != parsed:
            differing.append(path.name)
    assert not differing
