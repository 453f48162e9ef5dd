"""The mailbox's access token, read for an IMAP login (auth writes it, common/tokens.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection

from common.errors import TokenNotReady
from common.tokens import ExpiryMargin, TokenCipher, request_refresh


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
