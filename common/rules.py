"""Mail rules: which mail becomes a document and what happens to the rest.

Pure: no IMAP, no database. Auth validates rules with these models (a refusal is the
admin API's 422); the fetcher decides on a mail's headers, the processor on its parsed
attachments.

A rule's conditions are all optional and AND-ed; rules are tried in order and the first
that matches decides; the default rule (process, no conditions) ends every list. A
decision is taken as early as the information allows: ``decide`` with ``attachments``
unknown returns ``None`` when the first rule whose header conditions match also has
attachment conditions, because only the parsed mail can say whether it matches (and
the rules after it must not be tried before it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import getaddresses
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"
# An address (``ana@example.com``) or a domain (``example.com`` / ``@example.com``).
ADDRESS_OR_DOMAIN = (
    r"^(?:[^\s@\x00-\x1f\x7f]{1,64}@|@)?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
)


class Conditions(BaseModel):
    """What a mail must be for the rule to match; every condition given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: str | None = Field(default=None, pattern=ADDRESS_OR_DOMAIN)
    recipient: str | None = Field(default=None, pattern=ADDRESS_OR_DOMAIN)
    # Shell-style (``*factura*``), case-insensitive: no regular expression, so no
    # pattern an administrator types can make a mail take exponential time.
    subject: str | None = Field(default=None, pattern=PATTERN)
    has_attachments: bool | None = None
    attachment_name: str | None = Field(default=None, pattern=PATTERN)
    attachment_type: str | None = Field(default=None, pattern=r"^[A-Za-z0-9*?!.+/_-]{1,100}$")
    min_size: int | None = Field(default=None, ge=0)
    max_size: int | None = Field(default=None, ge=0)
    max_age_days: float | None = Field(default=None, gt=0, le=36500)

    @model_validator(mode="after")
    def _size_range(self) -> Conditions:
        if (
            self.min_size is not None
            and self.max_size is not None
            and self.min_size > self.max_size
        ):
            raise ValueError("min_size must not exceed max_size")
        return self

    def needs_attachments(self) -> bool:
        return (
            self.has_attachments is not None
            or self.attachment_name is not None
            or self.attachment_type is not None
        )


class RuleSpec(BaseModel):
    """A rule as the admin API takes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=PATTERN)
    conditions: Conditions = Field(default_factory=Conditions)
    action: Literal["process", "skip"]
    # process: carried in the document event's data for the ERP to route by.
    document_kind: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    tags: tuple[str, ...] = Field(default=(), max_length=20)
    # skip: True applies the mailbox's post-action (mark read, move, flag); False
    # leaves the mail unread on the server.
    apply_post_action: bool = True

    @model_validator(mode="after")
    def _action_fields(self) -> RuleSpec:
        for tag in self.tags:
            if not 1 <= len(tag) <= 64 or any(ord(c) < 32 or ord(c) == 127 for c in tag):
                raise ValueError("tags are 1-64 printable characters")
        if self.action == "skip" and (self.document_kind or self.tags):
            raise ValueError("document_kind and tags only apply to the process action")
        try:  # JSON allows lone surrogates; PostgreSQL's text and jsonb do not
            json.dumps(self.model_dump(mode="json"), ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid Unicode") from exc
        return self


@dataclass(frozen=True)
class Rule:
    """A stored rule: its id (None for the built-in default) and its spec."""

    id: int | None
    spec: RuleSpec

    @property
    def label(self) -> str:
        return self.spec.name

    def as_event_data(self) -> dict[str, Any]:
        """What a document's event says of the rule that let its mail through."""
        return {
            "id": self.id,
            "name": self.spec.name,
            "document_kind": self.spec.document_kind,
            "tags": list(self.spec.tags),
        }


DEFAULT_RULE = Rule(None, RuleSpec(name="default", action="process"))


@dataclass(frozen=True)
class Envelope:
    """What the header section, RFC822.SIZE and INTERNALDATE tell about a mail."""

    senders: tuple[str, ...]
    recipients: tuple[str, ...]
    subject: str
    size: int | None
    received_at: datetime | None

    @classmethod
    def from_headers(
        cls,
        *,
        from_: Iterable[str],
        to: Iterable[str],
        subject: str | None,
        size: int | None,
        received_at: datetime | None,
    ) -> Envelope:
        return cls(
            senders=_addresses(from_),
            recipients=_addresses(to),
            subject=subject or "",
            size=size,
            received_at=received_at,
        )


@dataclass(frozen=True)
class Attachment:
    filename: str | None
    content_type: str


def decide(
    rules: Sequence[Rule],
    envelope: Envelope,
    now: datetime,
    attachments: Sequence[Attachment] | None = None,
) -> Rule | None:
    """The first rule that matches; None if that needs the attachments and they are unknown.

    The default rule is tried after ``rules``, so a decision is always reached once the
    attachments are known.
    """
    for rule in (*rules, DEFAULT_RULE):
        conditions = rule.spec.conditions
        if not header_conditions_hold(conditions, envelope, now):
            continue
        if not conditions.needs_attachments():
            return rule
        if attachments is None:
            return None
        if attachment_conditions_hold(conditions, attachments):
            return rule
    return DEFAULT_RULE  # unreachable: the default rule has no conditions


def header_conditions_hold(conditions: Conditions, envelope: Envelope, now: datetime) -> bool:
    return (
        _any_address(conditions.sender, envelope.senders)
        and _any_address(conditions.recipient, envelope.recipients)
        and (
            conditions.subject is None
            or fnmatchcase(envelope.subject.casefold(), conditions.subject.casefold())
        )
        and _size_in_range(conditions, envelope.size)
        and _young_enough(conditions.max_age_days, envelope.received_at, now)
    )


def _any_address(wanted: str | None, addresses: tuple[str, ...]) -> bool:
    return wanted is None or any(_matches(wanted, a) for a in addresses)


def _size_in_range(conditions: Conditions, size: int | None) -> bool:
    if conditions.min_size is None and conditions.max_size is None:
        return True
    # An unknown size fails a size condition: the rule cannot be shown to apply.
    return (
        size is not None
        and (conditions.min_size is None or size >= conditions.min_size)
        and (conditions.max_size is None or size <= conditions.max_size)
    )


def _young_enough(max_age_days: float | None, received_at: datetime | None, now: datetime) -> bool:
    if max_age_days is None:
        return True
    return received_at is not None and now - received_at <= timedelta(days=max_age_days)


def attachment_conditions_hold(conditions: Conditions, attachments: Sequence[Attachment]) -> bool:
    if conditions.has_attachments is not None and conditions.has_attachments != bool(attachments):
        return False
    if conditions.attachment_name is None and conditions.attachment_type is None:
        return True
    # Name and type must hold for the same attachment.
    return any(_attachment_matches(conditions, a) for a in attachments)


def _attachment_matches(conditions: Conditions, attachment: Attachment) -> bool:
    if conditions.attachment_name is not None and not fnmatchcase(
        (attachment.filename or "").casefold(), conditions.attachment_name.casefold()
    ):
        return False
    return conditions.attachment_type is None or fnmatchcase(
        attachment.content_type.casefold(), conditions.attachment_type.casefold()
    )


def _matches(wanted: str, address: str) -> bool:
    """``wanted`` an address: the same address; a domain: that domain or a subdomain."""
    wanted = wanted.casefold()
    local, at, domain = wanted.rpartition("@")
    if at and local:
        return address == wanted
    actual_domain = address.rpartition("@")[2]
    return actual_domain == domain or actual_domain.endswith("." + domain)


def _addresses(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(a.casefold() for _, a in getaddresses(list(values)) if "@" in a)
