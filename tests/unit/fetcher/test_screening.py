"""The fetcher's header stage: what it reads from a header section, and what it leaves to
the processor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.rules import Rule, RuleSpec
from services.fetcher.screening import MailHead, screen

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def rule(rule_id: int, **spec: object) -> Rule:
    return Rule(rule_id, RuleSpec.model_validate({"name": f"r{rule_id}", **spec}))


def head(header: bytes, size: int | None = 1000, age_days: float = 1) -> MailHead:
    return MailHead(header, size, NOW - timedelta(days=age_days))


HEADER = (
    b"From: =?utf-8?q?Bolet=C3=ADn?= <news@noticias.example>\r\n"
    b"To: ana@cliente.example\r\n"
    b"Cc: Otro <otro@cliente.example>\r\n"
    b"Subject: =?utf-8?q?Bolet=C3=ADn_de_noviembre?=\r\n"
    b"Message-ID: <abc@noticias.example>\r\n\r\n"
)


def test_encoded_subject_sender_and_cc_are_read_as_a_person_reads_them() -> None:
    rules = [
        rule(
            1,
            action="skip",
            conditions={"subject": "boletín*", "recipient": "otro@cliente.example"},
        )
    ]
    [screened] = screen(rules, {7: head(HEADER)}, NOW)
    assert screened.uid == 7
    assert screened.message_id == "<abc@noticias.example>"
    assert screened.rule is not None
    assert screened.rule.id == 1


def test_size_and_age_come_from_the_server_not_the_headers() -> None:
    rules = [
        rule(1, action="skip", conditions={"max_size": 999}),
        rule(2, action="skip", conditions={"max_age_days": 0.5}),
    ]
    assert screen(rules, {1: head(HEADER, size=999)}, NOW)[0].rule == rules[0]
    assert screen(rules, {1: head(HEADER, size=5000, age_days=0.25)}, NOW)[0].rule == rules[1]
    unknown_size = screen(rules, {1: head(HEADER, size=None)}, NOW)[0].rule
    assert unknown_size is not None
    assert unknown_size.id is None  # a size condition never matches an unknown size


def test_an_attachment_rule_leaves_the_mail_undecided_and_unreadable_headers_match_nothing() -> (
    None
):
    rules = [rule(1, action="skip", conditions={"sender": "noticias.example"})]
    garbage = head(b"\xff\xfe\x00not a header\r\n\r\n")
    [screened] = screen(rules, {3: garbage}, NOW)
    assert screened.rule is not None
    assert screened.rule.id is None
    pending = [rule(1, action="process", conditions={"has_attachments": True})]
    assert screen(pending, {3: head(HEADER)}, NOW)[0].rule is None
