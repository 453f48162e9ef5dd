"""Token encryption at rest (Fernet: AES-128-CBC + HMAC-SHA256, authenticated).

``BANDEJA_TOKEN_KEYS`` lists keys newest first: the first encrypts, all decrypt, and
``bandeja rotate-keys`` re-encrypts every stored secret with the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet
from psycopg import Connection

from common.db import TOKEN_REFRESH_CHANNEL
from common.errors import ConfigurationError

# Every column that holds ciphertext: (table, key column, secret column).
ENCRYPTED_COLUMNS = (
    ("mailbox_tokens", "mailbox_id", "token_cache"),
    ("mailbox_tokens", "mailbox_id", "access_token"),
    ("tenants", "tenant_id", "app_token_cache"),
    ("oauth_flows", "state", "flow"),
)


@dataclass(frozen=True)
class ExpiryMargin:
    """How close to its expiry an access token counts as "too close": ``share`` of its
    lifetime, at most ``ceiling``. Microsoft's tokens live 60-90 minutes, so the ceiling
    applies; a token that lives 30 s gets a margin of a few seconds, not all of its life.

    ``share`` stays below the refresh loop's lead (services/auth/schedule.py, 15 % at the
    least): a token is renewed before any reader finds it too close to expiry.
    """

    ceiling: timedelta
    share: float

    def of(self, issued_at: datetime | None, expires_at: datetime) -> timedelta:
        if issued_at is None:  # a row written before issue times were kept
            return self.ceiling
        lifetime = max(expires_at - issued_at, timedelta(0))
        return min(self.ceiling, lifetime * self.share)


class TokenCipher:
    def __init__(self, fernet: MultiFernet) -> None:
        self._fernet = fernet

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(ciphertext)).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "stored token cannot be decrypted with any key in BANDEJA_TOKEN_KEYS"
            ) from exc

    def rotate(self, ciphertext: bytes) -> bytes:
        return self._fernet.rotate(bytes(ciphertext))


def rotate_all(conn: Connection[Any], cipher: TokenCipher) -> int:
    """Re-encrypt every stored secret with the newest key; return how many values changed."""
    count = 0
    for table, key, column in ENCRYPTED_COLUMNS:
        rows = conn.execute(
            f"SELECT {key} AS k, {column} AS v FROM {table} WHERE {column} IS NOT NULL FOR UPDATE"
        ).fetchall()
        for row in rows:
            conn.execute(
                f"UPDATE {table} SET {column} = %s WHERE {key} = %s",
                (cipher.rotate(row["v"]), row["k"]),
            )
            count += 1
    return count


def request_refresh(conn: Connection[Any], mailbox_id: int) -> None:
    """Ask auth for a forced refresh now: IMAP refused the token, or it is about to expire.

    This is how the fetcher "tells auth": the refresh loop claims due tokens and wakes on
    the NOTIFY. It never calls the token endpoint itself.
    """
    conn.execute(
        "UPDATE mailbox_tokens SET refresh_requested = true, refresh_due_at = now()"
        " WHERE mailbox_id = %s AND refresh_due_at > now()"
        # A token in backoff after a failed refresh keeps its backoff.
        " AND failure_count = 0",
        (mailbox_id,),
    )
    conn.execute(f"NOTIFY {TOKEN_REFRESH_CHANNEL}")
