"""The rules core: each condition, first match wins, the default, and deciding early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from common.rules import DEFAULT_RULE, Attachment, Envelope, Rule, RuleSpec, decide

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def mail(**overrides: object) -> Envelope:
    fields: dict[str, object] = {
        "from_": ["Ana <Ana@Proveedor.example>"],
        "to": ["facturas@cliente.example", "Otro <otro@sub.cliente.example>"],
        "subject": "Factura 2026-11",
        "size": 20_000,
        "received_at": NOW - timedelta(days=2),
    }
    fields.update(overrides)
    return Envelope.from_headers(**fields)  # type: ignore[arg-type]


def rule(rule_id: int = 1, action: str = "skip", **conditions: Any) -> Rule:
    spec = {"name": f"r{rule_id}", "action": action, "conditions": conditions}
    return Rule(rule_id, RuleSpec.model_validate(spec))


def skips(
    envelope: Envelope, attachments: list[Attachment] | None = None, **conditions: Any
) -> bool:
    decided = decide([rule(**conditions)], envelope, NOW, attachments)
    assert decided is not None
    return decided.id == 1


def test_sender_address_is_exact_and_case_insensitive() -> None:
    assert skips(mail(), sender="ana@proveedor.example")
    assert not skips(mail(), sender="bea@proveedor.example")


def test_sender_domain_matches_the_domain_and_its_subdomains_only() -> None:
    assert skips(mail(), sender="proveedor.example")
    assert skips(mail(), sender="@proveedor.example")
    assert skips(mail(from_=["x@mail.proveedor.example"]), sender="proveedor.example")
    assert not skips(mail(from_=["x@otroproveedor.example"]), sender="proveedor.example")


def test_recipient_any_of_to_and_cc() -> None:
    assert skips(mail(), recipient="otro@sub.cliente.example")
    assert skips(mail(), recipient="cliente.example")
    assert not skips(mail(), recipient="nadie@cliente.example")


def test_subject_pattern_is_a_case_insensitive_glob() -> None:
    assert skips(mail(), subject="*factura*")
    assert not skips(mail(), subject="factura")
    assert not skips(mail(), subject="*newsletter*")


def test_size_range_bounds_are_inclusive_and_an_unknown_size_does_not_match() -> None:
    assert skips(mail(), min_size=20_000, max_size=20_000)
    assert not skips(mail(), min_size=20_001)
    assert not skips(mail(), max_size=19_999)
    assert not skips(mail(size=None), max_size=10**9)


def test_maximum_age() -> None:
    assert skips(mail(), max_age_days=3)
    assert not skips(mail(), max_age_days=1)
    assert not skips(mail(received_at=None), max_age_days=1)


def test_conditions_are_anded() -> None:
    assert skips(mail(), sender="proveedor.example", subject="*factura*")
    assert not skips(mail(), sender="proveedor.example", subject="*pedido*")


def test_first_match_wins_and_the_default_processes_the_rest() -> None:
    rules = [rule(1, subject="*factura*"), rule(2, "process", sender="proveedor.example")]
    assert decide(rules, mail(), NOW) == rules[0]
    assert decide(rules, mail(subject="Hola"), NOW) == rules[1]
    assert decide(rules, mail(subject="Hola", from_=["x@y.example"]), NOW) is DEFAULT_RULE
    assert DEFAULT_RULE.spec.action == "process"


PDF = Attachment("Factura.PDF", "application/pdf")
PNG = Attachment("logo.png", "image/png")


def test_attachment_conditions_wait_for_the_parsed_mail() -> None:
    rules = [rule(1, "process", attachment_type="application/pdf"), rule(2)]
    assert decide(rules, mail(), NOW) is None
    assert decide(rules, mail(), NOW, [PNG, PDF]) == rules[0]
    assert decide(rules, mail(), NOW, [PNG]) == rules[1]


def test_a_header_rule_before_an_attachment_rule_decides_on_headers_alone() -> None:
    rules = [rule(1, subject="*newsletter*"), rule(2, "process", has_attachments=True)]
    assert decide(rules, mail(subject="Newsletter de noviembre"), NOW) == rules[0]
    # The attachment rule's header conditions (none) hold: undecided until parsed.
    assert decide(rules, mail(), NOW) is None


def test_has_attachments() -> None:
    assert skips(mail(), [PDF], has_attachments=True)
    assert not skips(mail(), [], has_attachments=True)
    assert skips(mail(), [], has_attachments=False)


def test_attachment_name_and_type_must_hold_for_the_same_attachment() -> None:
    assert skips(mail(), [PDF], attachment_name="*.pdf")
    assert skips(mail(), [PNG, PDF], attachment_name="*.pdf", attachment_type="application/*")
    assert not skips(mail(), [PNG, PDF], attachment_name="*.png", attachment_type="application/*")
    assert not skips(mail(), [Attachment(None, "application/pdf")], attachment_name="*.pdf")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "action": "delete"},
        {"name": "x", "action": "skip", "conditions": {"colour": "red"}},
        {"name": "x", "action": "skip", "conditions": {"min_size": 10, "max_size": 5}},
        {"name": "x", "action": "skip", "conditions": {"sender": "not an address"}},
        {"name": "x", "action": "skip", "document_kind": "invoice"},
        {"name": "", "action": "process"},
        {"name": "x", "action": "process", "tags": [""]},
    ],
)
def test_invalid_rules_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RuleSpec.model_validate(body)
