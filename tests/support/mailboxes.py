"""Mailboxes written straight into the database, one for tests and benches that store mail
for it, or many for listing tests and the admin API bench: no sign-in, no tokens (so
nothing fetches or refreshes them)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

STATES = ("active", "needs_reauth", "paused", "disconnected", "error")
TENANTS = ("0b5f4c1e-1111-4a5b-9c1d-000000000001", "0b5f4c1e-2222-4a5b-9c1d-000000000002")


@dataclass(frozen=True)
class Seeded:
    address: str
    tenant_id: str
    state: str


def seeded(count: int) -> list[Seeded]:
    """``count`` mailboxes: states and tenants in turn, addresses on three domains."""
    return [
        Seeded(
            address=f"buzon{n:05d}@empresa{n % 3}.example",
            tenant_id=TENANTS[n % len(TENANTS)],
            state=STATES[n % len(STATES)],
        )
        for n in range(count)
    ]


def seed_mailboxes(dsn: str, count: int) -> list[Seeded]:
    rows = seeded(count)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY mailboxes (address, tenant_id, state) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((row.address, row.tenant_id, row.state))
        cur.execute("ANALYZE mailboxes")  # plans as a long-lived database would have them
    return rows


def insert_mailbox(dsn: str, address: str = "docs@corp.example", tenant_id: str = "t1") -> int:
    """One active mailbox; its id."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id) VALUES (%s, %s) RETURNING id",
            (address, tenant_id),
        ).fetchone()
    assert row is not None
    return int(row[0])
