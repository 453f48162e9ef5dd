"""Hostile inputs end in bounded time as a ParsedMail or UnparseableMail, nothing else.

pytest-timeout (the marks below) is the time bound; no wall-clock assertions.
"""

from __future__ import annotations

import gzip
import io
import random
import time
import zipfile

import pytest

from common.errors import UnparseableMail
from services.processor.parsing import ParsedMail, ParseLimits, parse_message
from services.processor.parsing.smime import NotSignedDataError, signed_content
from tests.security.hostile_issue14 import (
    html_end_tags_mail,
    many_content_types_mail,
    smime_content_type_mail,
    smime_many_parts_mail,
)
from tests.unit.processor.parsing_samples import simple, with_attachment

pytestmark = pytest.mark.timeout(60)


def _outcome(raw: bytes) -> ParsedMail | UnparseableMail:
    try:
        return parse_message(raw)
    except UnparseableMail as exc:
        return exc


def test_zip_and_gzip_bombs_are_kept_undecompressed() -> None:
    """Compressed attachments are stored as sent: a bomb costs only its own size."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\x00" * 50_000_000)
    msg = with_attachment("bomb.zip", buffer.getvalue(), "application", "zip")
    msg.add_attachment(
        gzip.compress(b"\x00" * 50_000_000),
        maintype="application",
        subtype="gzip",
        filename="bomb.gz",
    )
    mail = parse_message(msg.as_bytes())
    assert [a.filename for a in mail.attachments] == ["bomb.zip", "bomb.gz"]
    assert sum(a.size for a in mail.attachments) < 1_000_000


def test_ten_thousand_parts_hit_the_part_limit() -> None:
    """A 10,000-part multipart is refused by the part bound before the parser churns."""
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(10_000))
    raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    with pytest.raises(UnparseableMail, match="parts"):
        parse_message(raw)


def test_many_parts_within_the_limit_parse() -> None:
    """Just under the bound, every part is still read."""
    parts = b"".join(
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\n%%PDF\r\n"
        for _ in range(900)
    )
    raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    assert len(parse_message(raw).attachments) == 900


def test_deeply_nested_multiparts_hit_the_depth_limit() -> None:
    """Multipart nesting past max_depth is refused, whatever the parser would do."""
    raw = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    for i in range(500):
        raw = (
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
            + raw
            + b"\r\n--b%d--\r\n" % i
        )
    with pytest.raises(UnparseableMail, match="nesting"):
        parse_message(b"Subject: deep\r\n" + raw)


def test_the_structure_guard_reads_boundaries_in_any_case() -> None:
    """The cheap pre-parse guard finds ``BOUNDARY=`` declared in upper case and keeps the
    value's case (boundaries are case-sensitive), so deep nesting is refused by the guard
    itself, before the standard parser spends time on it."""
    raw = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    for i in range(500):
        raw = (
            b'Content-Type: Multipart/Mixed; BOUNDARY="Part-%d-XyZ"\r\n\r\n--Part-%d-XyZ\r\n'
            % (i, i)
            + raw
            + b"\r\n--Part-%d-XyZ--\r\n" % i
        )
    with pytest.raises(UnparseableMail, match="multipart nesting deeper than"):
        parse_message(b"Subject: deep\r\n" + raw)


@pytest.mark.parametrize("depth", [50, 3000])
def test_deeply_nested_forwarded_mail_is_refused(depth: int) -> None:
    """message/rfc822 inside message/rfc822, many levels deep, ends as UnparseableMail."""
    raw = b"Subject: bottom\r\n\r\nhello\r\n"
    for _ in range(depth):
        raw = b"Subject: fw\r\nContent-Type: message/rfc822\r\n\r\n" + raw
    with pytest.raises(UnparseableMail):
        parse_message(raw)


@pytest.mark.parametrize("filler", [b"a", b"a b, ", b"=?utf-8?q?a?= ", b"(a(b(c"])
@pytest.mark.parametrize("header", [b"Subject", b"To", b"Content-Type"])
def test_one_megabyte_header_line(header: bytes, filler: bytes) -> None:
    """A 1 MB header is truncated for parsing (a defect), never parsed whole."""
    value = filler * (1_000_000 // len(filler))
    outcome = _outcome(header + b": " + value + b"\r\nFrom: a@b.cl\r\n\r\nbody\r\n")
    if isinstance(outcome, ParsedMail):
        assert len(outcome.subject) <= ParseLimits().max_header_bytes


def test_nul_bytes_survive() -> None:
    """NUL bytes in headers and bodies do not break parsing."""
    mail = parse_message(b"Subject: a\x00b\r\nFrom: x\x00@y.cl\r\n\r\n\x00body\x00\r\n")
    assert "body" in mail.text_body


def test_decoded_bytes_limit() -> None:
    """Mail decoding to more than max_decoded_bytes is refused."""
    raw = with_attachment("big.bin", b"x" * 200_000, "application", "octet-stream").as_bytes()
    with pytest.raises(UnparseableMail, match="decoded bytes"):
        parse_message(raw, ParseLimits(max_decoded_bytes=100_000))


def test_input_size_limit() -> None:
    """Input over max_input_bytes is refused before parsing."""
    with pytest.raises(UnparseableMail, match="exceeds"):
        parse_message(simple("x" * 5000).as_bytes(), ParseLimits(max_input_bytes=1000))


def test_non_bytes_input_is_unparseable() -> None:
    """Passing text instead of bytes is a clear UnparseableMail, not a TypeError."""
    with pytest.raises(UnparseableMail, match="bytes"):
        parse_message("Subject: x\r\n\r\nx")  # type: ignore[arg-type]


def test_random_bytes_never_escape() -> None:
    """Fuzzed mutations of a real mail end as ParsedMail or UnparseableMail only."""
    sample = with_attachment("f.xml", b"<?xml version='1.0'?><a/>", "text", "xml")
    base = bytearray(sample.as_bytes())
    rng = random.Random(20240315)
    for _ in range(300):
        mutated = bytearray(base)
        for _ in range(rng.randint(1, 40)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        _outcome(bytes(mutated))
    for _ in range(50):
        _outcome(bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000))))


def test_ber_indefinite_length_signed_data() -> None:
    """Outlook's BER (indefinite lengths, chunked OCTET STRING) signed-data is read."""
    oid_signed = bytes.fromhex("06092a864886f70d010702")
    oid_data = bytes.fromhex("06092a864886f70d010701")
    chunks = b"\x24\x80" + b"\x04\x03abc" + b"\x04\x02de" + b"\x00\x00"
    encap = b"\x30\x80" + oid_data + b"\xa0\x80" + chunks + b"\x00\x00" + b"\x00\x00"
    signed = b"\x30\x80" + b"\x02\x01\x01" + b"\x31\x00" + encap + b"\x00\x00"
    blob = b"\x30\x80" + oid_signed + b"\xa0\x80" + signed + b"\x00\x00" + b"\x00\x00"
    assert signed_content(blob) == b"abcde"


@pytest.mark.parametrize("blob", [b"", b"\x30", b"\x30\x80" * 5000, b"\x30\x84\xff\xff\xff\xff"])
def test_malformed_asn1_is_refused(blob: bytes) -> None:
    """Truncated, absurdly nested or oversized ASN.1 raises NotSignedDataError only."""
    with pytest.raises(NotSignedDataError):
        signed_content(blob)


def _cpu_seconds(raw: bytes, limits: ParseLimits | None = None) -> tuple[float, object]:
    started = time.process_time()
    outcome = _outcome(raw) if limits is None else parse_message(raw, limits)
    return time.process_time() - started, outcome


def test_the_outer_mails_limits_hold_inside_an_opaque_smime_blob() -> None:
    """10,000 parts inside signed-data are refused like 10,000 parts outside, and a 310 KB
    Content-Type inside costs what it costs outside (it took 9 s of CPU unbounded)."""
    seconds, outcome = _cpu_seconds(smime_many_parts_mail("x@corp.example"))
    assert isinstance(outcome, UnparseableMail)
    assert "MIME parts" in outcome.reason
    assert seconds < 1.0

    seconds, outcome = _cpu_seconds(smime_content_type_mail("x@corp.example"))
    assert isinstance(outcome, ParsedMail)
    assert "Firmado." in outcome.text_body
    assert seconds < 1.0


def test_html_made_to_be_quadratic_renders_in_linear_time() -> None:
    """``</`` repeated over 391 KiB took 11 s in the standard library's HTML parser; twice
    and five times the size cost about twice and five times as much now, under a second."""
    costs = [
        _cpu_seconds(html_end_tags_mail("x@corp.example", size))[0] for size in (400_000, 2_000_000)
    ]
    assert max(costs) < 1.0, costs


def test_html_over_the_render_cap_is_cut_and_its_text_says_so() -> None:
    """Only the first ``max_html_render_bytes`` are rendered; the text and the defects say
    so, and the HTML itself is kept whole."""
    html = "<p>" + "palabra " * 20_000 + "</p><p>FINAL</p>"
    msg = simple()
    msg.set_content(html, subtype="html")
    mail = parse_message(msg.as_bytes(), ParseLimits(max_html_render_bytes=10_000))
    assert "FINAL" not in mail.text_body
    assert mail.text_body.endswith(
        "[HTML body longer than 10000 bytes: text rendered from its start only]"
    )
    assert any("only the first 10000 bytes rendered" in d for d in mail.defects)
    assert mail.html_body is not None
    assert "FINAL" in mail.html_body


def test_parts_with_long_content_types_cost_a_budget_not_minutes() -> None:
    """Parts each under every per-part cap with its own 16 KiB Content-Type cost about
    0.19 s of CPU each in the modern header parser (990 of them: 190 s); past the mail's
    header budget they are read leniently, and the parts are still all there."""
    seconds, outcome = _cpu_seconds(many_content_types_mail("x@corp.example", parts=100))
    assert isinstance(outcome, ParsedMail)
    assert outcome.text_body.count("x") >= 100
    assert any("read leniently" in d for d in outcome.defects)
    # Without the budget these 100 parts cost about 19 s of CPU. The bound only has to tell
    # the two apart on a slow, shared host: with the budget a fresh-clone CI run here took
    # 2.12 s (2026-11-28, beside its other test worker and the e2e services).
    assert seconds < 6.0
