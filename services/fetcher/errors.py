"""The fetcher's exceptions, all under the common tree (common/errors.py).

::

    TransientError
    ├── TokenRejected          IMAP refused the access token (``expired``: BYE AccessTokenExpired)
    ├── TenantBusy             the tenant's IMAP slots are in use, or it is throttled (``wait``)
    ├── LeaseLost              the mailbox or its tenant slot stopped being ours during the run
    └── ServiceUnavailable
        ├── ConnectionDropped  BYE, timeout or dead socket (``kind`` says which)
        └── ProtocolViolation  what no session of ours reads past (a literal over the cap)
    PermanentError
    ├── MessageOverCap         one mail is larger than the size cap (``uid``, ``size``)
    └── MailboxUnavailable
        ├── NotConnected       ``BAD User is authenticated but not connected``
        └── FolderMissing

The IMAP adapter (imap.py's ``translate``) is the one place that reads server text to pick
among these; everything above it, the failure policy (failure_policy.py) first, branches
on the types and their fields.
"""

from __future__ import annotations

from typing import Literal

from common.errors import (
    MailboxUnavailable,
    PermanentError,
    ServiceUnavailable,
    TransientError,
)

# bye: the server ended the session (imapclient's abort); timeout: the socket read or
# connect timed out; connection: any other socket, TLS or protocol-level failure.
DropKind = Literal["bye", "timeout", "connection"]


class TokenRejected(TransientError):
    """IMAP refused the access token (expired early, revoked, or not yet refreshed).

    The fetcher never calls the token endpoint itself: it asks auth for a forced refresh.
    """

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class TenantBusy(TransientError):
    """Every IMAP slot of the tenant is in use, or the tenant is throttled."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class LeaseLost(TransientError):
    """The mailbox stopped being ours or active, or the run's tenant slot was taken
    after it expired, during the run."""


class ConnectionDropped(ServiceUnavailable):
    """The server closed the session (``BYE``), or the socket died mid-command."""

    def __init__(self, message: str, *, kind: DropKind = "connection") -> None:
        super().__init__(message)
        self.kind: DropKind = kind


class ProtocolViolation(ServiceUnavailable):
    """The server sent what no IMAP session of ours accepts (a literal far over the size
    cap); the session is dropped without a LOGOUT and the mailbox fetched again later."""


class OversizedLiteral(ProtocolViolation):
    """The server announced a literal larger than the session will read.

    Raised from inside imaplib's read, and not an imaplib error on purpose: imaplib
    re-raises its own errors as new ones, by text.
    """


class MessageOverCap(PermanentError):
    """A mail turned out larger than the cap while it was being read."""

    def __init__(self, uid: int, size: int) -> None:
        super().__init__(f"message {uid} is larger than the cap ({size}+ bytes read)")
        self.uid = uid
        self.size = size


class NotConnected(MailboxUnavailable):
    """``BAD User is authenticated but not connected``: no rights on the mailbox, or
    Exchange refusing connections that come too often (docs/architecture.md#exo-responses)."""


class FolderMissing(MailboxUnavailable):
    """The configured folder cannot be selected."""
