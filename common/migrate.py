"""Ordered, idempotent schema migrations: ``bandeja migrate``.

Each ``common/migrations/NNNN_name.sql`` runs once, in its own transaction, recorded in
``schema_migrations``. An advisory lock makes concurrent runs (several pods starting a
migration Job at once) safe.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
import structlog
from psycopg.rows import tuple_row

from common.db import connect

log = structlog.get_logger(__name__)

_LOCK_ID = 0x42414E44  # "BAND"


def available_migrations() -> list[tuple[str, str]]:
    folder = resources.files("common") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def missing_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """The migrations this code ships that the database has not applied, in order."""
    with conn.cursor(row_factory=tuple_row) as cur:
        exists = cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        done = (
            {row[0] for row in cur.execute("SELECT name FROM schema_migrations")}
            if exists and exists[0]
            else set()
        )
    return [name for name, _ in available_migrations() if name not in done]


def migrate(dsn: str) -> list[str]:
    """Apply every migration not yet applied; return the names applied now."""
    applied_now: list[str] = []
    with connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in conn.execute("SELECT name FROM schema_migrations")}
            for name, sql in available_migrations():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                log.info("migration_applied", migration=name)
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now
