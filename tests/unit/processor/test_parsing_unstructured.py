"""A plain Subject is read without the modern header parser (parsing/unstructured.py): where
the fast reading answers, it must give the modern parser's text exactly, on edge cases and
on every Subject of both corpora (nested mails included); where it declines, the header
still goes to the modern parser."""

from __future__ import annotations

import email.parser
from email.policy import EmailPolicy

import pytest

from services.processor.parsing import parse_message, policies
from services.processor.parsing.model import ParseLimits
from services.processor.parsing.unstructured import unstructured_text
from tests.support.corpus import CORPORA, corpus_files

_MODERN = EmailPolicy()

_ANSWERED = [
    "Factura 1000",
    "Hello  world\t with blanks ",
    "Re: [ticket #42] = ? odd = signs ?",
    "Factura =?utf-8?q?electr=C3=B3nica_N=C2=B0?= 1003",
    "=?utf-8?q?a?= =?utf-8?q?b?=",  # the blank between two encoded words goes
    "=?utf-8?q?a?=\t \t=?ISO-8859-1?B?SGVsbG8=?= c",
    "=?UTF-8?B?w6lww6k=?= x =?utf-8?Q?=E2=82=AC?=",
    "=?utf-8?q??=",
    "=?utf-8?q?50=25_off=3F?=",
    "=?utf-8?q?a=?= tail",  # a lone "=" stays
    "=?windows-1252?q?caf=E9?=",
    "=?utf-8?q?a?=  ",
    "line one\r\n line two",
]
_DECLINED = [
    "a=?utf-8?q?x?=",  # no blank before the encoded word
    "=?utf-8?q?x?=b",  # none after it
    "=?hex?q?41?=",  # not a text encoding
    "=?no-such-charset?q?a?=",
    "=?undefined?q?a?=",  # a codec that refuses everything with a bare UnicodeError
    "=?utf-8?b?SGVsbG8?=",  # not whole base64 quanta
    "=?utf-8?b?SGV*bG8=?=",
    "=?utf-8*es?q?a?=",  # RFC 2231 language
    "=?utf-8?q?=FF?=",  # bytes the charset refuses
    "=?raw-unicode-escape?q?=5Cud800?=",  # decodes to a surrogate
    "=?utf-8?x?a?=",
    "caf\udcc3\udca9",  # raw 8-bit
    "tab\x07bell",
]


@pytest.mark.parametrize("value", _ANSWERED)
def test_what_it_answers_is_the_modern_parsers_text(value: str) -> None:
    text = unstructured_text(value)
    assert text is not None
    assert text == str(_MODERN.header_fetch_parse("Subject", value))


@pytest.mark.parametrize("value", _DECLINED)
def test_anything_else_is_left_to_the_modern_parser(value: str) -> None:
    assert unstructured_text(value) is None


def test_the_bounded_policy_answers_a_plain_subject_with_its_text() -> None:
    head = b"Subject: Factura =?utf-8?q?N=C2=B0?= 7\r\nSubject-Like: x\r\n\r\n"
    policy = policies.modern(ParseLimits())
    message = email.parser.BytesParser(policy=policy).parsebytes(head, headersonly=True)
    assert type(message["subject"]) is str
    assert message["subject"] == "Factura N° 7"


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_corpus_mail_parses_the_same_with_and_without_it(
    monkeypatch: pytest.MonkeyPatch, corpus: str
) -> None:
    """Subjects, forwarded mails' Subjects and everything else of each parsed mail are the
    same as when every Subject goes through the modern parser."""
    paths = corpus_files(corpus)
    raws = [path.read_bytes() for path in paths]
    answered: list[str] = []

    def counted(value: str) -> str | None:
        text = unstructured_text(value)
        if text is not None:
            answered.append(text)
        return text

    monkeypatch.setattr(policies, "unstructured_text", counted)
    fast = [_outcome(raw) for raw in raws]
    monkeypatch.setattr(policies, "unstructured_text", lambda value: None)
    modern = [_outcome(raw) for raw in raws]
    differing = [p.name for p, a, b in zip(paths, fast, modern, strict=True) if a != b]
    assert not differing
    assert len(answered) >= len(raws) // 2  # most Subjects took the fast reading


def _outcome(raw: bytes) -> object:
    try:
        return parse_message(raw)
    except Exception as exc:  # the same error either way is the same outcome
        return (type(exc).__name__, str(exc))
