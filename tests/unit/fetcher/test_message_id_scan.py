"""The fetcher reads a mail's Message-ID with one pattern over its header block, no header
parser; it must read what the standard library's compat32 header parser read (the
fetcher's reading before issue #19), on both corpora and on the header forms that matter."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest

from common.message_ids import clean_message_id
from services.fetcher.store.raw_mail import _message_id
from tests.support.corpus import CORPORA, corpus_files


def _compat32_reading(data: bytes) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    value = BytesHeaderParser(policy=compat32).parsebytes(head).get("Message-ID")
    return clean_message_id(None if value is None else str(value))


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_corpus_mail_gives_the_header_parsers_message_id(corpus: str) -> None:
    files = corpus_files(corpus)
    differing = [
        f"{path.name}: {_compat32_reading(data)!r} -> {_message_id(data)!r}"
        for path in files
        if _compat32_reading(data := path.read_bytes()) != _message_id(data)
    ]
    assert not differing, "\n".join(differing)
    assert sum(_message_id(p.read_bytes()) is not None for p in files) > len(files) // 2


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"From: a@b\r\nMessage-ID: <1@x>\r\n\r\nbody", "<1@x>"),
        (b"From: a@b\nmessage-id:\n <folded@x>\n\nbody", "<folded@x>"),
        (b"MESSAGE-ID: <a@x>\r\n\t<b@x>\r\n\r\n", "<a@x> <b@x>"),
        (b"Message-ID: <first@x>\nMessage-ID: <second@x>\n\n", "<first@x>"),
        (b"X-Original-Message-ID: <not@x>\nSubject: s\n\n", None),
        (b"Subject: s\n\nMessage-ID: <in-the-body@x>\n", None),
        (b"Message-ID: <caf\xc3\xa9@x>\n\n", "<caf??@x>"),
        (b"Message-ID: <a\x00b@x>\n\n", "<ab@x>"),
        (b"Message-ID:\n\n", None),
    ],
)
def test_header_forms(head: bytes, expected: str | None) -> None:
    assert _message_id(head) == expected
    assert _compat32_reading(head) == expected
