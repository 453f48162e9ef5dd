"""The boundary split (split.py) builds exactly the tree the standard feed parser builds,
or declines and leaves the mail to the feed parser: never a third reading of a mail."""

from __future__ import annotations

import email.parser
from collections.abc import Callable
from email.message import Message
from email.policy import Policy

import pytest

from common.errors import UnparseableMail
from services.processor.parsing import guard, parse_message, policies
from services.processor.parsing.model import ParseLimits
from services.processor.parsing.split import split_tree
from standin.samples import invoice_mail
from tests.security.hostile import HOSTILE
from tests.security.hostile_issue14 import HOSTILE_DATA, many_content_types_mail
from tests.support.corpus import CORPORA, corpus_files

LIMITS = ParseLimits()
POLICIES: dict[str, Callable[[], Policy]] = {
    "bounded": lambda: policies.modern(LIMITS),
    "compat32": lambda: policies.LEGACY,
}


def _shape(message: Message) -> tuple[object, ...]:
    """Everything the walk reads from a tree: headers as sent, defects, payloads."""
    payload = message.get_payload()
    return (
        type(message).__name__,
        message.get_unixfrom(),
        message.get_default_type(),
        list(message.raw_items()),
        [type(defect).__name__ for defect in message.defects],
        [_shape(c) if isinstance(c, Message) else c for c in payload]
        if isinstance(payload, list)
        else payload,
    )


def _same_tree_or_declined(raw: bytes, policy: Policy) -> bool:
    """True when the split built the feed parser's tree; False when it declined."""
    tree = split_tree(raw, LIMITS, policy)
    if tree is None:
        return False
    expected = email.parser.BytesParser(policy=policy).parsebytes(raw)
    assert _shape(tree) == _shape(expected)
    return True


def _multipart(body: str, boundary: str = "b1", eol: str = "\n") -> bytes:
    head = (
        f'From: a@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary="{boundary}"\n'
    )
    return (head + "\n" + body).replace("\n", eol).encode()


_PART = "Content-Type: text/plain\n\nhello\n"
EDGE_CASES = {
    "lf": _multipart(f"--b1\n{_PART}--b1\n{_PART}--b1--\n"),
    "crlf": _multipart(f"--b1\n{_PART}--b1\n{_PART}--b1--\n", eol="\r\n"),
    "preamble and epilogue": _multipart(f"pre\n--b1\n{_PART}--b1--\nafter\n"),
    "delimiter with trailing blanks": _multipart(f"--b1 \t\n{_PART}--b1--  \n"),
    "close at the very end": _multipart(f"--b1\n{_PART}--b1--"),
    "look-alike delimiter in a body": _multipart(f"--b1\n{_PART}--b1x\n--b1 y\n--b1--\n"),
    "empty body": _multipart("--b1\nContent-Type: text/plain\n\n\n--b1--\n"),
    "nested": _multipart(
        '--b1\nContent-Type: multipart/alternative; boundary="b2"\n\n'
        f"--b2\n{_PART}--b2\n{_PART}--b2--\n--b1--\n"
    ),
    "inner never closed": _multipart(
        f'--b1\nContent-Type: multipart/alternative; boundary="b2"\n\n--b2\n{_PART}--b1--\n'
    ),
    "never closed": _multipart(f"--b1\n{_PART}"),
    "no start delimiter": _multipart("just text\n"),
    "adjacent delimiters": _multipart(f"--b1\n--b1\n{_PART}--b1--\n"),
    "bare CR line ends": _multipart(f"--b1\n{_PART}--b1--\n", eol="\r"),
    "part without headers": _multipart("--b1\n\nhello\n--b1--\n"),
    "part of headers only": _multipart("--b1\nContent-Type: text/plain\n--b1--\n"),
    "forwarded message": _multipart(
        "--b1\nContent-Type: message/rfc822\n\nSubject: inner\n\nhi\n--b1--\n"
    ),
    "forwarded multipart": _multipart(
        "--b1\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: multipart/mixed;"
        f' boundary="b2"\n\n--b2\n{_PART}--b2--\nepilogue\n--b1--\n'
    ),
    "forwarded, top level": b"Subject: s\nContent-Type: message/rfc822\n\nSubject: in\n\nhi\n",
    "delivery report": _multipart(
        "--b1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n--b1--\n"
    ),
    "digest": _multipart(f"--b1\n{_PART}--b1--\n").replace(b"mixed", b"digest"),
    "base64 multipart": _multipart(f"--b1\n{_PART}--b1--\n").replace(
        b"Subject: s\n", b"Subject: s\nContent-Transfer-Encoding: base64\n"
    ),
    "no boundary parameter": b"Subject: s\nContent-Type: multipart/mixed\n\n--b1\n",
    "header line without colon": _multipart(
        "--b1\nContent-Type: text/plain\nnot a header\n\nx\n--b1--\n"
    ),
    "8-bit header and body": _multipart(f"--b1\n{_PART}--b1--\n").replace(
        b"Subject: s", "Subject: café".encode("latin-1")
    )
    + "ñ".encode(),
    "not multipart": b"Subject: s\n\nhello\n",
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_cases_split_as_the_feed_parser_does_or_are_declined(case: str, policy: str) -> None:
    _same_tree_or_declined(EDGE_CASES[case], POLICIES[policy]())


def test_well_formed_mail_takes_the_split_path() -> None:
    """The cheap path is the one taken by ordinary mail, in both line-end conventions."""
    raw, _ = invoice_mail(1, to="docs@example.com", pdf_size=40_000)
    assert _same_tree_or_declined(raw, POLICIES["bounded"]())
    assert _same_tree_or_declined(raw.replace(b"\n", b"\r\n"), POLICIES["bounded"]())
    for case in (
        "lf",
        "crlf",
        "preamble and epilogue",
        "nested",
        "empty body",
        "forwarded message",
        "forwarded multipart",
        "forwarded, top level",
    ):
        assert _same_tree_or_declined(EDGE_CASES[case], POLICIES["bounded"]()), case


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("corpus", CORPORA)
def test_every_corpus_mail_splits_as_the_feed_parser_does_or_is_declined(
    corpus: str, policy: str
) -> None:
    split = sum(
        _same_tree_or_declined(p.read_bytes(), POLICIES[policy]()) for p in corpus_files(corpus)
    )
    assert split > 0


# The hostile mails, each as its test builds it, but two made cheaper to build and parse
# twice: the zip and gzip bombs are opaque base64 in ordinary parts (nothing structural;
# their builder compresses a gigabyte), and 100 long Content-Types spend the header budget
# as 990 do.
_HOSTILE: dict[str, Callable[[str], bytes]] = {
    **{name: build for name, build in {**HOSTILE, **HOSTILE_DATA}.items() if name != "bombs"},
    "hostile: 990 long Content-Types": lambda to: many_content_types_mail(to, parts=100),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", _HOSTILE)
def test_hostile_mail_splits_as_the_feed_parser_does_or_is_declined(
    case: str,
) -> None:
    """Hostile mail reaches the split before the structure guard (entity.py). What the
    guard would refuse, the split declines too, so the guard still judges it; what the
    guard lets through, the split reads as the feed parser does: the same tree or none,
    with the same header budget spent."""
    raw = _HOSTILE[case]("docs@example.com")
    split_policy, feed_policy = policies.modern(LIMITS), policies.modern(LIMITS)
    tree = split_tree(raw, LIMITS, split_policy)
    try:
        guard.check_structure(raw, LIMITS)
    except UnparseableMail:
        assert tree is None
        return
    if tree is None:
        return
    expected = email.parser.BytesParser(policy=feed_policy).parsebytes(raw)
    assert _shape(tree) == _shape(expected)
    assert policies.header_budget_spent(split_policy) == policies.header_budget_spent(feed_policy)


def test_more_delimiter_lines_than_parts_allowed_are_declined_then_refused() -> None:
    """The split runs before the structure guard, so it stops counting delimiter lines
    past the parts limit instead of listing a hostile mail's every one; the guard then
    refuses the mail, as before."""
    limits = ParseLimits(max_parts=5)
    raw = _multipart("".join(f"--b1\n{_PART}" for _ in range(8)) + "--b1--\n")
    assert split_tree(raw, limits, policies.modern(limits)) is None
    with pytest.raises(UnparseableMail, match="more than 5 MIME parts"):
        parse_message(raw, limits)


def test_a_mail_that_talks_about_boundaries_is_read_not_refused() -> None:
    """A well-formed mail whose text quotes more ``boundary=`` parameters than the parts
    limit (a thread about MIME) was refused by the guard, which counts every declaration
    it can see; the split reads its real structure, which is within the limits."""
    limits = ParseLimits(max_parts=5)
    quoted = "".join(f'Content-Type: multipart/mixed; boundary="q{n}"\n' for n in range(8))
    raw = _multipart(f"--b1\nContent-Type: text/plain\n\n{quoted}--b1--\n")
    with pytest.raises(UnparseableMail, match="more than 5 multipart boundaries"):
        guard.check_structure(raw, limits)
    mail = parse_message(raw, limits)
    assert 'boundary="q7"' in mail.text_body
