"""Bandeja's exception tree.

::

    BandejaError
    ├── TransientError           retry later; nothing about the mailbox changes
    │   ├── Throttled            the server asked us to wait ``backoff_seconds``
    │   ├── ServiceUnavailable   a dependency (IMAP, identity platform, DB, broker) is down
    │   └── TokenNotReady        the access token is being refreshed; fetch again shortly
    └── PermanentError           retrying the same input cannot succeed
        ├── ReauthRequired       a person (or an administrator) must consent again
        ├── ConfigurationError   the operator's set-up is wrong (client secret, app id)
        ├── MailboxUnavailable   the mailbox is gone or denies access
        └── UnparseableMail      the bytes are not a mail we can read (kept, marked failed)

Adapters translate library errors (imapclient, socket/ssl, msal result dicts, psycopg)
into these once, with ``raise ... from``; dramatiq's retry policy is chosen by type
(``throws=(PermanentError,)``).
"""

from __future__ import annotations


class BandejaError(Exception):
    """Root of every error Bandeja raises on purpose."""


class TransientError(BandejaError):
    """Retrying later may succeed; no state change is warranted."""


class Throttled(TransientError):
    def __init__(self, message: str, *, backoff_seconds: float) -> None:
        super().__init__(message)
        self.backoff_seconds = backoff_seconds


class ServiceUnavailable(TransientError):
    pass


class TokenNotReady(TransientError):
    def __init__(self, mailbox_id: int) -> None:
        super().__init__(f"access token of mailbox {mailbox_id} is being refreshed")
        self.mailbox_id = mailbox_id


class PermanentError(BandejaError):
    """Retrying the same work cannot succeed without someone changing something."""


class ReauthRequired(PermanentError):
    def __init__(self, message: str, *, aadsts: int | None = None) -> None:
        super().__init__(message)
        self.aadsts = aadsts


class ConfigurationError(PermanentError):
    def __init__(self, message: str, *, aadsts: int | None = None) -> None:
        super().__init__(message)
        self.aadsts = aadsts


class MailboxUnavailable(PermanentError):
    pass


class UnparseableMail(PermanentError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
