"""The attachment stage of the mail rules (common/rules.py): a mail the fetcher could not
decide on its headers is decided here, once parsed; a skip means no document.

A mail skipped here was downloaded and has had the mailbox's post-action already (the
fetcher applies it once the mail is stored): its raw bytes are deleted at once, leaving
the tombstone that keeps the fetch exactly-once (as retention does), and the skip is
recorded with the rule that made it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection

from common.rule_metrics import MAILS_SKIPPED
from common.rules import Attachment, Envelope, Rule, RuleSpec, decide
from services.processor.parsing import ParsedMail
from services.processor.store import RawMail

RulesByMailbox = dict[int, list[Rule]]


def rules_for(conn: Connection[Any], mailbox_ids: Iterable[int]) -> RulesByMailbox:
    """Each mailbox's rules as they are now, its own first, then its tenant's."""
    wanted = sorted(set(mailbox_ids))
    found: RulesByMailbox = {mailbox_id: [] for mailbox_id in wanted}
    if not wanted:
        return found
    rows = conn.execute(
        "SELECT m.id AS mailbox_id, r.id, r.spec FROM mailboxes m JOIN mail_rules r"
        " ON r.mailbox_id = m.id OR (r.mailbox_id IS NULL AND r.tenant_id = m.tenant_id)"
        " WHERE m.id = ANY(%s) ORDER BY m.id, r.mailbox_id IS NULL, r.position",
        (wanted,),
    ).fetchall()
    for row in rows:
        found[row["mailbox_id"]].append(Rule(row["id"], RuleSpec.model_validate(row["spec"])))
    return found


def decide_parsed(rules: list[Rule], raw: RawMail, mail: ParsedMail) -> Rule:
    envelope = Envelope.from_headers(
        from_=[mail.from_ or ""],
        to=mail.to,
        subject=mail.subject,
        size=raw.size,
        # The fetcher used INTERNALDATE; here the Date header, else the fetch time.
        received_at=mail.date or raw.fetched_at,
    )
    attachments = [
        Attachment(a.original_filename or a.filename, a.content_type) for a in mail.attachments
    ]
    decided = decide(rules, envelope, datetime.now(UTC), attachments)
    assert decided is not None  # attachments given: always decided
    return decided


def record_skipped(conn: Connection[Any], skipped: list[tuple[RawMail, ParsedMail, Rule]]) -> None:
    """In the caller's transaction: the skip records, and the raw bytes gone."""
    if not skipped:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO skipped_mails (mailbox_id, folder, uidvalidity, uid, raw_message_id,"
            " message_id, size, rule_id, rule_name, stage, post_action, post_action_done_at)"
            " SELECT r.mailbox_id, r.folder, r.uidvalidity, r.uid, r.id, %s, r.size, %s, %s,"
            " 'attachments', m.post_action, r.post_action_done_at"
            " FROM raw_messages r JOIN mailboxes m ON m.id = r.mailbox_id WHERE r.id = %s"
            " ON CONFLICT (mailbox_id, folder, uidvalidity, uid) DO NOTHING",
            [(mail.message_id, rule.id, rule.label, raw.id) for raw, mail, rule in skipped],
        )
    ids = [raw.id for raw, _, _ in skipped]
    conn.execute("DELETE FROM raw_message_chunks WHERE raw_id = ANY(%s)", (ids,))
    conn.execute(
        "UPDATE raw_messages SET raw = NULL, headers = NULL, chunked = false,"
        " raw_deleted_at = now() WHERE id = ANY(%s)",
        (ids,),
    )
    MAILS_SKIPPED.labels("attachments").inc(len(skipped))
