"""Which mailboxes are due for a fetch: claiming them, when the next one falls due, and
every active mailbox's poll age.

``FOR UPDATE SKIP LOCKED`` plus moving ``next_fetch_at`` forward in the same statement
means two schedulers never claim the same due mailbox twice.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

# The jitter only shortens the interval (90-100 % of it): the setting is the longest a
# mailbox goes unchecked, as "checked at least once a minute" reads. At ±10 % a 60 s
# poll left a mail up to 66 s unseen, and the freshness p95 at 59.7 s (BENCHMARKS.md).
# The due rows come from the partial index mailboxes_due; ``= ANY(ARRAY(...))`` then
# updates them by primary key. ``IN (subquery)`` was planned as a hash semi-join over a
# sequential scan of every mailbox: each claim read the whole table (10,000 rows).
_CLAIM_DUE = (
    "UPDATE mailboxes SET next_fetch_at = now() + make_interval(secs =>"
    "   coalesce(poll_interval, %s) * (0.9 + random() * 0.1))"
    " WHERE id = ANY(ARRAY(SELECT id FROM mailboxes"
    "   WHERE state = 'active' AND next_fetch_at <= now()"
    "     AND (lease_until IS NULL OR lease_until < now())"
    "   ORDER BY next_fetch_at LIMIT %s FOR UPDATE SKIP LOCKED))"
    " RETURNING id"
)


def claim_due(conn: Connection[Any], poll_interval: float, limit: int) -> list[int]:
    """Up to ``limit`` mailboxes due now; their next poll is pushed 90-100 % of an
    interval ahead (``poll_interval`` where the mailbox has none of its own)."""
    rows = conn.execute(_CLAIM_DUE, (poll_interval, limit)).fetchall()
    return [r["id"] for r in rows]


def seconds_until_next_due(conn: Connection[Any]) -> float | None:
    """Seconds until the next mailbox ``claim_due`` could take falls due (negative when
    one is due already); None when there is none."""
    row = conn.execute(
        "SELECT extract(epoch FROM min(next_fetch_at) - now()) AS s FROM mailboxes"
        # The same mailboxes claim_due could take: one that is due but leased would
        # otherwise count as due now until its run ends.
        " WHERE state = 'active' AND (lease_until IS NULL OR lease_until < now())"
    ).fetchone()
    if row is None or row["s"] is None:
        return None
    return float(row["s"])


def poll_ages(conn: Connection[Any]) -> list[float]:
    """Seconds since each active mailbox was last fetched (since it was added, if never):
    one scan of the table."""
    rows = conn.execute(
        "SELECT extract(epoch FROM now() - coalesce(last_fetch_at, created_at)) AS age"
        " FROM mailboxes WHERE state = 'active'"
    ).fetchall()
    return [float(r["age"]) for r in rows]
