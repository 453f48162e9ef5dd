"""Relay-specific errors, under the common tree (common/errors.py)."""

from __future__ import annotations

from common.errors import ServiceUnavailable


class PublishRefused(ServiceUnavailable):
    """The broker refused a publish for a reason retrying cannot fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class PublishNacked(ServiceUnavailable):
    """RabbitMQ answered ``basic.nack``: it did not take the event (a queue that rejects
    publishes when full, an internal error). Retrying later may succeed."""
