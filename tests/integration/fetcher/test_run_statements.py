"""A fetch run's first and last statements against the real PostgreSQL
(services/fetcher/store/runs.py): what one statement leases, takes and reads, and what
the last one frees. The runs around them are in test_fetch_run_start.py."""

from __future__ import annotations

from typing import Any

from common.db import connect
from services.fetcher.store import runs, tenant_limits
from services.fetcher.sync import FolderPosition
from tests.support.infra import TestDatabase

TENANT = "t1"


def _mailbox(conn: Any, address: str = "docs@corp.example") -> int:
    row = conn.execute(
        "INSERT INTO mailboxes (address, tenant_id, folder) VALUES (%s, %s, 'Facturas')"
        " RETURNING id",
        (address, TENANT),
    ).fetchone()
    return int(row["id"])


def _slots(conn: Any, cap: int) -> None:
    conn.execute("INSERT INTO tenants (tenant_id) VALUES (%s) ON CONFLICT DO NOTHING", (TENANT,))
    conn.execute(
        "INSERT INTO imap_slots (tenant_id, slot) SELECT %s, g FROM generate_series(0, %s - 1) g",
        (TENANT, cap),
    )


def _two_mailboxes_one_slot(conn: Any) -> tuple[int, int]:
    """Two mailboxes of the tenant, which has one connection slot."""
    mailboxes = _mailbox(conn), _mailbox(conn, "other@corp.example")
    _slots(conn, 1)
    return mailboxes


def test_one_statement_leases_takes_a_slot_and_reads_position_and_token(
    clean_database: TestDatabase,
) -> None:
    with connect(clean_database.dsn, autocommit=True) as conn:
        mailbox_id = _mailbox(conn)
        _slots(conn, 2)
        conn.execute(
            "INSERT INTO folder_state (mailbox_id, folder, uidvalidity, last_uid)"
            " VALUES (%s, 'INBOX', 1, 99), (%s, 'Facturas', 7, 42)",
            (mailbox_id, mailbox_id),
        )
        conn.execute(
            "INSERT INTO mailbox_tokens (mailbox_id, access_token, access_expires_at)"
            " VALUES (%s, 'sealed', now() + interval '1 hour')",
            (mailbox_id,),
        )

        start = runs.start_run(conn, mailbox_id, "worker-a", cap=2)
        assert start is not None
        assert (start.mailbox.folder, start.slot, start.tenant_wait) == ("Facturas", 0, 0.0)
        assert start.position == FolderPosition(7, 42)  # the mailbox's folder, not INBOX
        assert start.token_row is not None
        assert bytes(start.token_row["access_token"]) == b"sealed"
        # Leased: nobody else starts a run of it, and the next run takes the next slot.
        assert runs.start_run(conn, mailbox_id, "worker-b", cap=2) is None
        other = runs.start_run(conn, _mailbox(conn, "other@corp.example"), "worker-b", cap=2)
        assert other is not None
        assert (other.slot, other.position, other.token_row) == (1, None, None)  # no fetch yet

        runs.finish_ok(conn, mailbox_id, "worker-a", TENANT, start.slot)
        after = conn.execute(
            "SELECT m.lease_owner, m.last_fetch_at IS NOT NULL AS fetched, s.owner AS slot_owner"
            " FROM mailboxes m, imap_slots s WHERE m.id = %s AND s.slot = 0",
            (mailbox_id,),
        ).fetchone()
        assert after == {"lease_owner": None, "fetched": True, "slot_owner": None}
        assert runs.start_run(conn, mailbox_id, "worker-b", cap=2) is not None


def test_a_throttled_tenant_or_a_full_one_gets_the_lease_but_no_slot(
    clean_database: TestDatabase,
) -> None:
    with connect(clean_database.dsn, autocommit=True) as conn:
        first, second = _two_mailboxes_one_slot(conn)
        tenant_limits.throttle_tenant(conn, TENANT, 40.0)

        throttled = runs.start_run(conn, first, "worker-a", cap=1)
        assert throttled is not None
        assert throttled.slot is None
        assert 30 < throttled.tenant_wait <= 40

        conn.execute("UPDATE tenants SET imap_throttled_until = NULL")
        conn.execute("UPDATE mailboxes SET lease_until = NULL, lease_owner = NULL")
        taken = runs.start_run(conn, first, "worker-a", cap=1)
        full = runs.start_run(conn, second, "worker-b", cap=1)
        assert taken is not None
        assert full is not None
        assert (taken.slot, full.slot, full.tenant_wait) == (0, None, 0.0)


def test_a_renewal_extends_lease_and_slot_and_fails_once_the_slot_is_another_runs(
    clean_database: TestDatabase,
) -> None:
    with connect(clean_database.dsn, autocommit=True) as conn:
        mailbox_id, other_id = _two_mailboxes_one_slot(conn)
        start = runs.start_run(conn, mailbox_id, "worker-a", cap=1)
        assert start is not None
        assert start.slot == 0
        conn.execute(
            "UPDATE mailboxes SET lease_until = now() + interval '1 second' WHERE id = %s",
            (mailbox_id,),
        )
        conn.execute("UPDATE imap_slots SET lease_until = now() + interval '1 second'")

        assert runs.renew_run(conn, mailbox_id, "worker-a", TENANT, 0)
        left = conn.execute(
            "SELECT extract(epoch FROM m.lease_until - now()) AS lease,"
            " extract(epoch FROM s.lease_until - now()) AS slot"
            " FROM mailboxes m, imap_slots s WHERE m.id = %s",
            (mailbox_id,),
        ).fetchone()
        assert left is not None
        assert left["lease"] > 80
        assert left["slot"] > 80

        # The slot's lease ran out and another run took it, even one of the same process
        # (the slot is held by the run, not the process): this run must stop.
        conn.execute("UPDATE imap_slots SET lease_until = now() - interval '1 second'")
        other = runs.start_run(conn, other_id, "worker-a", cap=1)
        assert other is not None
        assert other.slot == 0
        assert not runs.renew_run(conn, mailbox_id, "worker-a", TENANT, 0)
        held = conn.execute("SELECT owner FROM imap_slots").fetchone()
        assert held == {"owner": runs.slot_owner("worker-a", other_id)}
        # Nor does its end free the slot the other run holds now.
        runs.finish_ok(conn, mailbox_id, "worker-a", TENANT, 0)
        assert conn.execute("SELECT owner FROM imap_slots").fetchone() == held
        # A mailbox paused mid-run stops its run too, slot or not.
        assert runs.renew_run(conn, other_id, "worker-a", TENANT, 0)
        conn.execute("UPDATE mailboxes SET state = 'paused' WHERE id = %s", (other_id,))
        assert not runs.renew_run(conn, other_id, "worker-a", TENANT, 0)
