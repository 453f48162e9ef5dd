"""The mailbox's access token, read for an IMAP login (auth writes it, common/tokens.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection

from common.tokens import ExpiryMargin, TokenCipher


@dataclass(frozen=True)
class UsableToken:
    token: str
    issued_at: datetime | None
    expires_at: datetime
    usable_until: datetime  # expires_at less the margin: reconnect before then


def usable_access_token(
    conn: Connection[Any], cipher: TokenCipher, mailbox_id: int, margin: ExpiryMargin
) -> UsableToken | None:
    """The mailbox's access token if it outlives ``margin``; None when there is none or it
    is about to expire. A read only: the caller raises ``TokenNotReady``, whose failure
    policy asks auth for a forced refresh in the transaction that records the failure (a
    request written here was rolled back with the caller's transaction).
    """
    row = conn.execute(
        "SELECT access_token, access_issued_at, access_expires_at FROM mailbox_tokens"
        " WHERE mailbox_id = %s",
        (mailbox_id,),
    ).fetchone()
    return usable_from_row(cipher, row, margin)


def usable_from_row(
    cipher: TokenCipher, row: Mapping[str, Any] | None, margin: ExpiryMargin
) -> UsableToken | None:
    """The token of a ``mailbox_tokens`` row (``access_token``, ``access_issued_at``,
    ``access_expires_at``) if it outlives ``margin``, decrypted."""
    if row is None or row["access_token"] is None or row["access_expires_at"] is None:
        return None
    expires_at: datetime = row["access_expires_at"]
    usable_until = expires_at - margin.of(row["access_issued_at"], expires_at)
    if usable_until < datetime.now(UTC):
        return None
    return UsableToken(
        cipher.decrypt(row["access_token"]), row["access_issued_at"], expires_at, usable_until
    )
