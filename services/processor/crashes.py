"""Mail that kills the processor: counted, and after three deaths recorded as failed.

A processor that dies while parsing (an OOM kill, a crash inside a C extension, a pod
killed past its grace period) never acknowledges its message. RabbitMQ hands the message
to the next processor, which dies on the same mail, and so on: a crash loop that also
holds back every mail stored with that one. Dramatiq's retries cannot stop it: they count
exceptions, and a process that dies raises none.

So an attempt marks its mails before it loads them (``store.start_processing``) and
clears the marks when it ends in Python. A message that comes back *redelivered*
(RabbitMQ's flag: given out before and never acknowledged) counts a crash against each of
its mails still marked. Its mails are then taken one at a time, so that another death is
pinned on the mail that causes it, and a mail with ``LIMIT`` deaths becomes a ``failed``
document read from its headers, without being parsed again. Its raw bytes stay for
``bandeja reprocess --failed``, which starts its count again.

An ordinary retry is a new message, never redelivered, so marks left behind by a database
outage count nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from psycopg import Connection
from psycopg_pool import ConnectionPool

from services.processor import metrics, store

log = structlog.get_logger(__name__)

LIMIT = 3


def reason(crashes: int) -> str:
    return (
        f"the processor died {crashes} times while parsing this mail; not parsed again,"
        " the raw mail is kept for reprocessing"
    )


def count(pool: ConnectionPool[Connection[Any]], raw_ids: Sequence[int]) -> dict[int, int]:
    """For a redelivered message: one more crash for each mail the dead process was on.
    Returns those mails with their crash counts."""
    with pool.connection() as conn:
        crashed = store.count_crashes(conn, raw_ids)
    for raw_id, crashes in crashed.items():
        metrics.PROCESS_CRASHES.inc()
        log.warning("processor_died_on_mail", raw_id=raw_id, crashes=crashes, limit=LIMIT)
    return crashed
