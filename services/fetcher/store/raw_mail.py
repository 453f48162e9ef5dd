"""Raw mail, the claim check: stored durably before its processing is enqueued, then
marked enqueued and marked done once the post-action is applied on the server."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg import Connection

from common.db import refuses_input
from common.message_ids import clean_message_id

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StoredMail:
    raw_id: int
    uid: int
    enqueued: bool
    post_action_done: bool


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


def mark_enqueued(conn: Connection[Any], raw_ids: list[int]) -> None:
    conn.execute("UPDATE raw_messages SET enqueued_at = now() WHERE id = ANY(%s)", (raw_ids,))


def mark_post_action_done(conn: Connection[Any], raw_ids: list[int]) -> None:
    conn.execute(
        "UPDATE raw_messages SET post_action_done_at = now() WHERE id = ANY(%s)", (raw_ids,)
    )


# The header block as the standard library's feed parser reads it: lines that start a
# field ("name:"), continue one (leading blank), or are a misplaced "From " envelope line;
# the first other line ends it (email.feedparser.headerRE). Then the block's first
# Message-ID field with its folded lines (RFC 5322 2.2.3). A header parser built a whole
# message object per mail for this one field. The processor reads the Message-ID again
# from its own parse; here it guards, with the content hash, against storing a mail twice.
_HEADER_BLOCK = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[ \t])[^\r\n]*(?:\r\n|\r|\n|\Z))*")
_MESSAGE_ID_FIELD = re.compile(
    rb"^message-id:([^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE
)


def _message_id(data: bytes) -> str | None:
    # Sliced up to the first blank line: split(sep, 1) also copied the whole body out.
    head = _up_to(_up_to(data, b"\r\n\r\n"), b"\n\n")
    block = _HEADER_BLOCK.match(head)
    match = _MESSAGE_ID_FIELD.search(head, 0, block.end() if block else 0)
    if match is None:
        return None
    return clean_message_id(match.group(1).decode("ascii", "surrogateescape"))


def _up_to(data: bytes, separator: bytes) -> bytes:
    end = data.find(separator)
    return data if end < 0 else data[:end]
