"""Mail rules as the fetcher reads them, and what it records of their decisions: the
mails a rule skipped, and the rule matched on a stored mail's headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from common.rules import Rule, RuleSpec


def rules_for(conn: Connection[Any], mailbox_id: int) -> list[Rule]:
    """The mailbox's own rules, then its tenant's, in order (the default is implied).

    Read at every run: a rule changed through the admin API applies to the next run.
    """
    rows = conn.execute(
        "SELECT r.id, r.spec FROM mail_rules r JOIN mailboxes m ON m.id = %s"
        " WHERE r.mailbox_id = m.id OR (r.mailbox_id IS NULL AND r.tenant_id = m.tenant_id)"
        " ORDER BY r.mailbox_id IS NULL, r.position",
        (mailbox_id,),
    ).fetchall()
    return [Rule(row["id"], RuleSpec.model_validate(row["spec"])) for row in rows]


@dataclass(frozen=True)
class Skipped:
    uid: int
    message_id: str | None
    size: int | None
    rule: Rule
    # The mailbox's post-action for it, or None when the rule leaves it unread.
    post_action: str | None


@dataclass(frozen=True)
class SkippedMail:
    uid: int
    post_action: str | None
    post_action_done: bool


def skipped_uids(
    conn: Connection[Any], mailbox_id: int, folder: str, uidvalidity: int, uids: list[int]
) -> dict[int, SkippedMail]:
    if not uids:
        return {}
    rows = conn.execute(
        "SELECT uid, post_action, post_action_done_at IS NOT NULL AS done FROM skipped_mails"
        " WHERE mailbox_id = %s AND folder = %s AND uidvalidity = %s AND uid = ANY(%s)",
        (mailbox_id, folder, uidvalidity, uids),
    ).fetchall()
    return {r["uid"]: SkippedMail(r["uid"], r["post_action"], r["done"]) for r in rows}


def record_skipped(
    conn: Connection[Any], mailbox_id: int, folder: str, uidvalidity: int, mails: list[Skipped]
) -> None:
    """Record mails skipped on their headers; a mail recorded before is left as it was."""
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO skipped_mails (mailbox_id, folder, uidvalidity, uid, message_id, size,"
            " rule_id, rule_name, stage, post_action)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'headers', %s)"
            " ON CONFLICT (mailbox_id, folder, uidvalidity, uid) DO NOTHING",
            [
                (
                    mailbox_id,
                    folder,
                    uidvalidity,
                    m.uid,
                    m.message_id,
                    m.size,
                    m.rule.id,
                    m.rule.label,
                    m.post_action,
                )
                for m in mails
            ],
        )


def mark_skipped_done(
    conn: Connection[Any], mailbox_id: int, folder: str, uidvalidity: int, uids: list[int]
) -> None:
    conn.execute(
        "UPDATE skipped_mails SET post_action_done_at = now() WHERE mailbox_id = %s"
        " AND folder = %s AND uidvalidity = %s AND uid = ANY(%s)",
        (mailbox_id, folder, uidvalidity, uids),
    )


def save_matches(conn: Connection[Any], matches: dict[int, dict[str, Any] | None]) -> None:
    """raw id → the rule matched on its headers (None: to be decided after parsing)."""
    if not matches:
        return
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO raw_message_rules (raw_message_id, rule) VALUES (%s, %s)"
            " ON CONFLICT (raw_message_id) DO NOTHING",
            [(raw_id, None if rule is None else Jsonb(rule)) for raw_id, rule in matches.items()],
        )
