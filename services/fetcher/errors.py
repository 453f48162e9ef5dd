"""Fetcher-specific errors, under the common tree (common/errors.py)."""

from __future__ import annotations

from common.errors import MailboxUnavailable, ServiceUnavailable, TransientError


class TokenRejected(TransientError):
    """IMAP refused the access token (expired early, revoked, or not yet refreshed).

    The fetcher never calls the token endpoint itself: it asks auth for a forced refresh.
    """

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class ConnectionDropped(ServiceUnavailable):
    """The server closed the session (``BYE``), or the socket died mid-command."""


class ProtocolViolation(ServiceUnavailable):
    """The server sent what no IMAP session of ours accepts (a literal far over the size
    cap); the session is dropped without a LOGOUT and the mailbox fetched again later."""


class NotConnected(MailboxUnavailable):
    """``BAD User is authenticated but not connected``: no rights on the mailbox, or
    Exchange refusing connections that come too often (docs/architecture.md#exo-responses)."""


class FolderMissing(MailboxUnavailable):
    pass


class LeaseLost(TransientError):
    """The mailbox stopped being ours, or stopped being active, during the run."""
