"""Every Bandeja end-to-end run ends with a ``CHECKPOINT`` inside its CPU account.

Otherwise a run's figures would miss the writing of the data pages it dirtied (a later
checkpoint writes them, or never, when the bench drops the database), and would pay
instead for a checkpoint that the WAL of earlier runs set off: at the default
``max_wal_size`` of 1 GB, the bench's write rate started one every 18-25 seconds, and one
that overlapped a run took PostgreSQL's CPU per 1 MB mail from about 14 ms to 20-22 ms
(BENCHMARKS.md, "Twelfth round"). With a checkpoint at the end of each run, each run
starts with none pending and pays for its own pages.
"""

from __future__ import annotations

import psycopg

from tests.support.infra import PG_ADMIN_DSN


def checkpoint() -> None:
    """Write every dirty page now (the caller's CPU account sees the server's work)."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
