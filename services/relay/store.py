"""The relay's table: the transactional outbox (claim, mark published, keep the error)."""

from __future__ import annotations

from typing import Any

from psycopg import Connection


def claim_pending(conn: Connection[Any], limit: int) -> list[dict[str, Any]]:
    """The oldest unpublished events, locked until the caller's transaction ends; rows
    another relay replica holds are skipped, so replicas never publish the same batch."""
    return conn.execute(
        "SELECT id, event_type, event FROM outbox WHERE published_at IS NULL"
        " ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    ).fetchall()


def mark_published(conn: Connection[Any], ids: list[Any]) -> None:
    if ids:
        conn.execute(
            "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY(%s)",
            (ids,),
        )


def record_failures(conn: Connection[Any], errors: dict[Any, str]) -> None:
    """Keep each failed event's reason on its row (the runbook's query shows it)."""
    if errors:
        with conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s WHERE id = %s",
                [(error[:500], event_id) for event_id, error in errors.items()],
            )


def backlog(conn: Connection[Any]) -> tuple[int, float]:
    """How many events wait, and the age in seconds of the oldest."""
    row = conn.execute(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0)"
        " AS age FROM outbox WHERE published_at IS NULL"
    ).fetchone()
    assert row is not None
    return int(row["n"]), float(row["age"])
