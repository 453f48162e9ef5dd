"""How much mail one processor process parses at once, in bytes.

Parsing a mail costs about 8 to 11 times its size in memory at the peak (the raw bytes, the
parser's lines and tree, the decoded attachments): 7.7x by tracemalloc for one 34 MB mail,
300-400 MiB of RSS per 35 MB mail in flight in the runs below. Eight worker threads on
eight 35 MB mails peaked at 2,446 MiB (`python -m bench.parse_memory --budget-mib 0`): a
2 GiB pod is OOM-killed, and RabbitMQ hands the same unacknowledged messages to the next
pod, which dies the same way. So a batch reserves its raw bytes before it loads them and
waits while the budget is spent (128 MiB: 1,260 MiB peak for the same mails, 64 MiB: 961
MiB, no slower). A batch larger than the whole budget still runs, alone: no mail is
refused for its size here.

XML attachments cost more: the invoice extractors parse each one (up to
``ParseLimits.max_xml_bytes``) into an ElementTree, about 24 times the XML's size for the
smallest elements (``<a/>``), 9 times for an invoice's. A 28.6 MB mail that is one 20 MB
XML attachment of ``<a/>`` peaks at 22 times its size (+605 MiB; ``python -m
bench.parse_memory --xml-bytes 20900000 --mails 1 --budget-mib 0``). Eight of them, eight
threads, peaked at 2,703 MiB under a 128 MiB budget, 1,739 MiB under 64 MiB and 1,272 MiB
under 48 MiB (more than the single mail's factor says: memory freed by one thread is not
all given back to the system before the next mail). The default budget is therefore
48 MiB, about a fortieth of the 2 GiB pod.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from services.processor.errors import BudgetWaitTooLong
from services.processor.metrics import BYTES_IN_FLIGHT


class MemoryBudget:
    def __init__(self, limit_bytes: int, *, max_wait_seconds: float = 60.0) -> None:
        self.limit_bytes = limit_bytes
        self.max_wait_seconds = max_wait_seconds
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        deadline = time.monotonic() + self.max_wait_seconds
        with self._changed:
            while self.in_use and self.in_use + nbytes > self.limit_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BudgetWaitTooLong(
                        f"{nbytes} bytes did not fit in the processing budget"
                        f" for {self.max_wait_seconds:.0f} s"
                    )
                self._changed.wait(left)
            self.in_use += nbytes
            BYTES_IN_FLIGHT.set(self.in_use)
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= nbytes
                BYTES_IN_FLIGHT.set(self.in_use)
                self._changed.notify_all()
