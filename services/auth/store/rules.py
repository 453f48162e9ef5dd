"""Mail rules (``mail_rules``) as the admin API manages them, and what the status page
shows of them and of the mails they skipped (``skipped_mails``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from common.rules import RuleSpec


def mailbox_tenant(conn: Connection[Any], mailbox_id: int) -> str | None:
    row = conn.execute("SELECT tenant_id FROM mailboxes WHERE id = %s", (mailbox_id,)).fetchone()
    return None if row is None else str(row["tenant_id"])


def list_rules(
    conn: Connection[Any], *, tenant_id: str, mailbox_id: int | None
) -> list[dict[str, Any]]:
    """A mailbox's own rules (``mailbox_id``) or its tenant's (``None``), in order."""
    rows = conn.execute(
        "SELECT id, spec FROM mail_rules WHERE tenant_id = %s"
        " AND mailbox_id IS NOT DISTINCT FROM %s ORDER BY position",
        (tenant_id, mailbox_id),
    ).fetchall()
    return [{"id": row["id"], **row["spec"]} for row in rows]


def replace_rules(
    conn: Connection[Any], *, tenant_id: str, mailbox_id: int | None, rules: list[RuleSpec]
) -> None:
    """In the caller's transaction: the list becomes exactly ``rules``, in that order.

    The fetcher reads the rules at every run, so the next run applies the new list.
    """
    conn.execute(
        "DELETE FROM mail_rules WHERE tenant_id = %s AND mailbox_id IS NOT DISTINCT FROM %s",
        (tenant_id, mailbox_id),
    )
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO mail_rules (tenant_id, mailbox_id, position, spec)"
            " VALUES (%s, %s, %s, %s)",
            [
                (tenant_id, mailbox_id, position, Jsonb(rule.model_dump(mode="json")))
                for position, rule in enumerate(rules)
            ],
        )


def skipped_mails(conn: Connection[Any], mailbox_id: int, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT message_id, size, rule_id, rule_name, stage, post_action, skipped_at"
        " FROM skipped_mails WHERE mailbox_id = %s ORDER BY skipped_at DESC, id DESC LIMIT %s",
        (mailbox_id, limit),
    ).fetchall()
    return [{**row, "skipped_at": row["skipped_at"].isoformat()} for row in rows]


@dataclass(frozen=True)
class RulesSummary:
    own_rules: int
    tenant_rules: int
    skipped_last_day: int


def summaries(conn: Connection[Any], mailbox_ids: list[int]) -> dict[int, RulesSummary]:
    """For the status page's rows: one query for the whole page."""
    if not mailbox_ids:
        return {}
    rows = conn.execute(
        "SELECT m.id,"
        " (SELECT count(*) FROM mail_rules r WHERE r.mailbox_id = m.id) AS own_rules,"
        " (SELECT count(*) FROM mail_rules r WHERE r.mailbox_id IS NULL"
        "  AND r.tenant_id = m.tenant_id) AS tenant_rules,"
        " (SELECT count(*) FROM skipped_mails s WHERE s.mailbox_id = m.id"
        "  AND s.skipped_at > now() - interval '1 day') AS skipped_last_day"
        " FROM mailboxes m WHERE m.id = ANY(%s)",
        (mailbox_ids,),
    ).fetchall()
    return {
        row["id"]: RulesSummary(row["own_rules"], row["tenant_rules"], row["skipped_last_day"])
        for row in rows
    }
