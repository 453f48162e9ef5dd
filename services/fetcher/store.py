"""The fetcher's tables: mailbox leases, folder positions, raw mail (the claim check)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

import psycopg
import structlog
from psycopg import Connection

from common import events
from common.db import refuses_input
from common.errors import TokenNotReady
from common.message_ids import clean_message_id
from common.tokens import ExpiryMargin, TokenCipher, request_refresh
from services.fetcher.sync import FolderPosition

log = structlog.get_logger(__name__)

LEASE_TTL = timedelta(seconds=90)


@dataclass(frozen=True)
class LeasedMailbox:
    id: int
    address: str
    tenant_id: str
    folder: str
    post_action: str
    move_to_folder: str | None
    error_count: int


@dataclass(frozen=True)
class StoredMail:
    raw_id: int
    uid: int
    enqueued: bool
    post_action_done: bool


def acquire_lease(conn: Connection[Any], mailbox_id: int, owner: str) -> LeasedMailbox | None:
    """Take the mailbox for one fetch run; None if it is not active or another worker has it."""
    row = conn.execute(
        "UPDATE mailboxes SET lease_until = now() + %s, lease_owner = %s"
        " WHERE id = %s AND state = 'active' AND (lease_until IS NULL OR lease_until < now())"
        " RETURNING id, address, tenant_id, folder, post_action, move_to_folder, error_count",
        (LEASE_TTL, owner, mailbox_id),
    ).fetchone()
    return LeasedMailbox(**row) if row else None


def recover_leases_of_previous_life(conn: Connection[Any], host: str, owner: str) -> int:
    """Release the leases a previous process on this host held when it died.

    A container restarted in the same pod keeps its host name, so whatever
    ``host-<old pid>`` leased is free now instead of after the lease expires.
    """
    pattern = f"{host}-%"
    released = 0
    for table, column, extra in (
        ("mailboxes", "lease_owner", ", lease_until = NULL"),
        ("mailboxes", "idle_owner", ", idle_lease_until = NULL"),
        ("imap_slots", "owner", ", lease_until = NULL"),
    ):
        cursor = conn.execute(
            f"UPDATE {table} SET {column} = NULL{extra} WHERE {column} LIKE %s AND {column} <> %s",
            (pattern, owner),
        )
        released += cursor.rowcount
    return released


def renew_lease(conn: Connection[Any], mailbox_id: int, owner: str) -> bool:
    """Extend our lease; False once the mailbox stopped being ours or stopped being active
    (disconnected, paused, needs_reauth mid-run): nothing more may be stored for it."""
    row = conn.execute(
        "UPDATE mailboxes SET lease_until = now() + %s WHERE id = %s AND lease_owner = %s"
        " AND state = 'active' RETURNING id",
        (LEASE_TTL, mailbox_id, owner),
    ).fetchone()
    return row is not None


def release_ok(conn: Connection[Any], mailbox_id: int, owner: str) -> None:
    conn.execute(
        "UPDATE mailboxes SET lease_until = NULL, lease_owner = NULL, last_fetch_at = now(),"
        " last_error = NULL, error_count = 0 WHERE id = %s AND lease_owner = %s",
        (mailbox_id, owner),
    )


def release_failed(
    conn: Connection[Any], mailbox_id: int, owner: str, error: str, retry_in: float
) -> None:
    conn.execute(
        "UPDATE mailboxes SET lease_until = NULL, lease_owner = NULL, last_error = %s,"
        " error_count = error_count + 1,"
        " next_fetch_at = LEAST(next_fetch_at, now() + %s)"
        " WHERE id = %s AND lease_owner = %s",
        (error[:1000], timedelta(seconds=retry_in), mailbox_id, owner),
    )


@dataclass(frozen=True)
class UsableToken:
    token: str
    issued_at: datetime | None
    expires_at: datetime
    usable_until: datetime  # expires_at less the margin: reconnect before then


def usable_access_token(
    conn: Connection[Any], cipher: TokenCipher, mailbox_id: int, margin: ExpiryMargin
) -> UsableToken:
    """The mailbox's access token, if it outlives ``margin``.

    Otherwise auth is asked for a forced refresh and TokenNotReady is raised: the
    fetcher never calls the token endpoint itself.
    """
    row = conn.execute(
        "SELECT access_token, access_issued_at, access_expires_at FROM mailbox_tokens"
        " WHERE mailbox_id = %s",
        (mailbox_id,),
    ).fetchone()
    if row is None or row["access_token"] is None or row["access_expires_at"] is None:
        request_refresh(conn, mailbox_id)
        raise TokenNotReady(mailbox_id)
    expires_at: datetime = row["access_expires_at"]
    usable_until = expires_at - margin.of(row["access_issued_at"], expires_at)
    if usable_until < datetime.now(UTC):
        request_refresh(conn, mailbox_id)
        raise TokenNotReady(mailbox_id)
    return UsableToken(
        cipher.decrypt(row["access_token"]), row["access_issued_at"], expires_at, usable_until
    )


def folder_position(conn: Connection[Any], mailbox_id: int, folder: str) -> FolderPosition | None:
    row = conn.execute(
        "SELECT uidvalidity, last_uid FROM folder_state WHERE mailbox_id = %s AND folder = %s",
        (mailbox_id, folder),
    ).fetchone()
    return FolderPosition(row["uidvalidity"], row["last_uid"]) if row else None


def save_position(conn: Connection[Any], mailbox_id: int, folder: str, pos: FolderPosition) -> None:
    conn.execute(
        "INSERT INTO folder_state (mailbox_id, folder, uidvalidity, last_uid)"
        " VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (mailbox_id, folder) DO UPDATE SET uidvalidity = EXCLUDED.uidvalidity,"
        " last_uid = GREATEST(CASE WHEN folder_state.uidvalidity = EXCLUDED.uidvalidity"
        "   THEN folder_state.last_uid ELSE 0 END, EXCLUDED.last_uid), updated_at = now()",
        (mailbox_id, folder, pos.uidvalidity, pos.last_uid),
    )


def stored_uids(
    conn: Connection[Any], mailbox_id: int, folder: str, uidvalidity: int, uids: list[int]
) -> dict[int, StoredMail]:
    if not uids:
        return {}
    rows = conn.execute(
        "SELECT id, uid, enqueued_at IS NOT NULL AS enqueued,"
        " post_action_done_at IS NOT NULL AS done FROM raw_messages"
        " WHERE mailbox_id = %s AND folder = %s AND uidvalidity = %s AND uid = ANY(%s)",
        (mailbox_id, folder, uidvalidity, uids),
    ).fetchall()
    return {r["uid"]: StoredMail(r["id"], r["uid"], r["enqueued"], r["done"]) for r in rows}


# One statement per mail: the Message-ID + content-hash guard and the insert together, so
# a batch is pipelined (executemany) in one round trip instead of two per mail. Casts are
# explicit because INSERT ... SELECT does not type parameters from the target columns.
# The mail's bytes go in binary (%b): as text they would be escaped to twice their size
# and parsed back by the server, which was a fifth of the CPU spent on a 1 MB mail.
_SAVE_RAW = """
WITH same AS (
    SELECT id FROM raw_messages
    WHERE mailbox_id = %(mailbox_id)s AND message_id = %(message_id)s::text
      AND sha256 = %(sha256)s::text
    LIMIT 1
), inserted AS (
    INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, message_id, sha256, size,
                              raw, headers, too_large)
    SELECT %(mailbox_id)s, %(folder)s::text, %(uidvalidity)s, %(uid)s, %(message_id)s::text,
           %(sha256)s::text, %(size)s, %(raw)b, %(headers)b, %(too_large)s
    WHERE NOT EXISTS (SELECT 1 FROM same)
    ON CONFLICT (mailbox_id, folder, uidvalidity, uid) DO UPDATE SET uid = EXCLUDED.uid
    RETURNING id
)
SELECT id FROM same UNION ALL SELECT id FROM inserted
"""


def save_raw_batch(
    conn: Connection[Any],
    mailbox_id: int,
    folder: str,
    uidvalidity: int,
    bodies: dict[int, bytes],
    *,
    too_large_sizes: dict[int, int] | None = None,
) -> dict[int, int]:
    """Store mails durably (or their headers, when over the cap); return uid → raw id.

    Keyed on (mailbox, folder, UIDVALIDITY, UID); Message-ID plus content hash is the
    second guard, for the same mail seen under a new UIDVALIDITY.
    """
    rows: list[dict[str, Any]] = []
    for uid, data in bodies.items():
        too_large = too_large_sizes is not None and uid in too_large_sizes
        rows.append(
            {
                "mailbox_id": mailbox_id,
                "folder": folder,
                "uidvalidity": uidvalidity,
                "uid": uid,
                "message_id": _message_id(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": too_large_sizes[uid] if too_large_sizes and too_large else len(data),
                "raw": None if too_large else data,
                "headers": data if too_large else None,
                "too_large": too_large,
            }
        )
    try:
        with conn.transaction():  # a savepoint: a refusal undoes only this attempt
            return _insert_raw(conn, rows)
    except psycopg.Error as exc:
        if not refuses_input(exc):
            raise
        log.warning("raw_batch_refused_storing_one_by_one", sqlstate=exc.sqlstate)
    return {row["uid"]: _insert_raw_alone(conn, row) for row in rows}


def _insert_raw(conn: Connection[Any], rows: list[dict[str, Any]]) -> dict[int, int]:
    raw_ids: dict[int, int] = {}
    with conn.cursor() as cursor:
        cursor.executemany(_SAVE_RAW, rows, returning=True)
        for row in rows:
            stored = cursor.fetchone()
            assert stored is not None
            raw_ids[row["uid"]] = int(stored["id"])
            cursor.nextset()
    return raw_ids


def _insert_raw_alone(conn: Connection[Any], row: dict[str, Any]) -> int:
    """One mail the database refused in its batch: stored as is if it was another mail's
    fault, else without the Message-ID the database refused (the processor reads it again
    from the raw bytes, which are all kept)."""
    try:
        with conn.transaction():
            return _insert_raw(conn, [row])[row["uid"]]
    except psycopg.Error as exc:
        if not refuses_input(exc):
            raise
        log.warning(
            "raw_mail_refused_stored_without_message_id", uid=row["uid"], sqlstate=exc.sqlstate
        )
    with conn.transaction():
        return _insert_raw(conn, [{**row, "message_id": None}])[row["uid"]]


def save_raw_chunked(
    conn: Connection[Any],
    mailbox_id: int,
    folder: str,
    uidvalidity: int,
    uid: int,
    chunks: Iterator[bytes],
) -> tuple[int, int]:
    """Store a big mail chunk by chunk as it arrives; memory stays at one chunk. Returns
    its raw id and its size.

    The content hash is computed on the way; the Message-ID guard reads the first chunk.
    """
    existing = conn.execute(
        "SELECT id, size FROM raw_messages WHERE mailbox_id = %s AND folder = %s"
        " AND uidvalidity = %s AND uid = %s",
        (mailbox_id, folder, uidvalidity, uid),
    ).fetchone()
    if existing:
        return int(existing["id"]), int(existing["size"])
    row = conn.execute(
        "INSERT INTO raw_messages (mailbox_id, folder, uidvalidity, uid, sha256, size, chunked)"
        " VALUES (%s, %s, %s, %s, '', 0, true) RETURNING id",
        (mailbox_id, folder, uidvalidity, uid),
    ).fetchone()
    assert row is not None
    raw_id = int(row["id"])
    digest = hashlib.sha256()
    size = 0
    message_id = None
    for seq, chunk in enumerate(chunks):
        if seq == 0:
            message_id = _message_id(chunk)
        digest.update(chunk)
        size += len(chunk)
        conn.execute(
            "INSERT INTO raw_message_chunks (raw_id, seq, data) VALUES (%s, %s, %b)",
            (raw_id, seq, chunk),
        )
    duplicate = _same_mail(conn, mailbox_id, message_id, digest.hexdigest(), raw_id)
    if duplicate is not None:
        conn.execute("DELETE FROM raw_messages WHERE id = %s", (raw_id,))
        return duplicate, size
    conn.execute(
        "UPDATE raw_messages SET sha256 = %s, size = %s, message_id = %s WHERE id = %s",
        (digest.hexdigest(), size, message_id, raw_id),
    )
    return raw_id, size


def _same_mail(
    conn: Connection[Any], mailbox_id: int, message_id: str | None, sha256: str, other_than: int
) -> int | None:
    if message_id is None:
        return None
    row = conn.execute(
        "SELECT id FROM raw_messages WHERE mailbox_id = %s AND message_id = %s AND sha256 = %s"
        " AND id <> %s LIMIT 1",
        (mailbox_id, message_id, sha256, other_than),
    ).fetchone()
    return int(row["id"]) if row else None


def move_to_error(conn: Connection[Any], mailbox_id: int, error: str) -> bool:
    """A mailbox that is gone or denies access stops being retried; one event says why."""
    row = conn.execute(
        "UPDATE mailboxes SET state = 'error', last_error = %s, updated_at = now()"
        " WHERE id = %s AND state = 'active' RETURNING id, address, tenant_id, erp_reference",
        (error[:1000], mailbox_id),
    ).fetchone()
    if row is None:
        return False
    event = events.cloud_event(
        events.MAILBOX_ERROR,
        event_id=uuid.uuid4(),  # once per transition, inside it
        source="urn:bandeja:fetcher",
        subject=f"mailbox/{row['id']}",
        data={
            "mailbox_id": row["id"],
            "mailbox": row["address"],
            "tenant_id": row["tenant_id"],
            "reference": row["erp_reference"],
            "error": error[:1000],
        },
    )
    events.add_to_outbox(conn, event)
    return True


def post_action(conn: Connection[Any], mailbox_id: int) -> tuple[str, str | None]:
    row = conn.execute(
        "SELECT post_action, move_to_folder FROM mailboxes WHERE id = %s", (mailbox_id,)
    ).fetchone()
    return (row["post_action"], row["move_to_folder"]) if row else ("mark_read", None)


def mark_enqueued(conn: Connection[Any], raw_ids: list[int]) -> None:
    conn.execute("UPDATE raw_messages SET enqueued_at = now() WHERE id = ANY(%s)", (raw_ids,))


def mark_post_action_done(conn: Connection[Any], raw_ids: list[int]) -> None:
    conn.execute(
        "UPDATE raw_messages SET post_action_done_at = now() WHERE id = ANY(%s)", (raw_ids,)
    )


def _message_id(data: bytes) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    value = BytesHeaderParser(policy=compat32).parsebytes(head).get("Message-ID")
    return clean_message_id(None if value is None else str(value))
