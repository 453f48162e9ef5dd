"""The processor's exceptions, all under the common tree (common/errors.py).

::

    TransientError
    ├── BudgetWaitTooLong     a batch waited too long for room in the memory budget
    └── ServiceUnavailable
        └── SendInterrupted   ``bandeja reprocess``: the broker failed part way (``sent``/``total``)
    PermanentError
    ├── RawMessageMissing     a processing message names a raw mail that is not stored
    └── UnparseableMail       (common) the bytes are not a mail we can read: a ``failed`` document

dramatiq retries a transient error with backoff and never a permanent one
(``throws=(PermanentError,)`` in actors.py).
"""

from __future__ import annotations

from common.errors import PermanentError, ServiceUnavailable, TransientError


class BudgetWaitTooLong(TransientError):
    """Waited longer than a batch should; dramatiq retries it later with backoff."""


class SendInterrupted(ServiceUnavailable):
    """The broker failed part way: ``sent`` of ``total`` messages were confirmed."""

    def __init__(self, sent: int, total: int) -> None:
        super().__init__(f"{sent} of {total} processing messages sent")
        self.sent = sent
        self.total = total


class RawMessageMissing(PermanentError):
    """A processing message names raw mail ids that have no stored mail."""
