"""The start and end of a fetch run against the real PostgreSQL, before any IMAP: a
mailbox without a usable token gets a refresh asked of auth (and kept), a throttled tenant
takes no connection slot and waits the time it was told, and the tenant's slots follow a
raised cap. Every run that ends leaves its lease and its slot free."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from common.db import connect, create_pool
from services.fetcher import fetch
from services.fetcher.store import tenant_limits
from tests.support.infra import TestDatabase

TENANT = "t1"


@pytest.fixture
def deps(clean_database: TestDatabase) -> Iterator[fetch.FetchDeps]:
    pool = create_pool(clean_database.dsn, name="test-run-start", max_size=2)
    settings = SimpleNamespace(
        fetch_batch_size=20, imap_connections_per_tenant=2, mailbox_error_threshold=3
    )
    yield fetch.FetchDeps(settings=cast(Any, settings), pool=pool, cipher=cast(Any, None))
    pool.close()


def _mailbox(dsn: str, *, tenant_row: bool = False) -> int:
    """A mailbox whose access token expired; ``tenant_row``: its tenant's row exists too
    (a throttle or slots to set), as it does once auth has seen the tenant."""
    with connect(dsn, autocommit=True) as conn:
        if tenant_row:
            conn.execute("INSERT INTO tenants (tenant_id) VALUES (%s)", (TENANT,))
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id) VALUES ('docs@corp.example', %s)"
            " RETURNING id",
            (TENANT,),
        ).fetchone()
        assert row is not None
        # An access token that expired, its refresh scheduled for later: only a request
        # from the fetcher makes auth refresh it now.
        conn.execute(
            "INSERT INTO mailbox_tokens (mailbox_id, access_token, access_expires_at,"
            " refresh_due_at) VALUES (%s, NULL, now() - interval '1 minute',"
            " now() + interval '10 minutes')",
            (row["id"],),
        )
        return int(row["id"])


def _row(dsn: str, query: str, *params: object) -> dict[str, Any]:
    with connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return dict(row)


def _slots_held(dsn: str) -> int:
    return int(_row(dsn, "SELECT count(owner) AS n FROM imap_slots")["n"])


def test_a_mailbox_without_a_usable_token_asks_auth_for_a_refresh(
    deps: fetch.FetchDeps, clean_database: TestDatabase
) -> None:
    mailbox_id = _mailbox(clean_database.dsn)

    assert fetch.fetch_mailbox(deps, mailbox_id) == "token_rejected"

    after = _row(
        clean_database.dsn,
        "SELECT t.refresh_requested, t.refresh_due_at <= now() AS refresh_due, m.lease_owner,"
        " m.next_fetch_at < now() + interval '5 seconds' AS retried_soon"
        " FROM mailbox_tokens t JOIN mailboxes m ON m.id = t.mailbox_id WHERE m.id = %s",
        mailbox_id,
    )
    assert after == {
        "refresh_requested": True,
        "refresh_due": True,
        "lease_owner": None,
        "retried_soon": True,
    }
    assert _slots_held(clean_database.dsn) == 0


def test_a_throttled_tenant_takes_no_slot_and_waits_the_time_it_was_told(
    deps: fetch.FetchDeps, clean_database: TestDatabase
) -> None:
    mailbox_id = _mailbox(clean_database.dsn, tenant_row=True)
    with connect(clean_database.dsn, autocommit=True) as conn:
        tenant_limits.throttle_tenant(conn, TENANT, 40.0)
    with connect(clean_database.dsn, autocommit=True) as conn:
        conn.execute("UPDATE mailboxes SET next_fetch_at = now() + interval '1 hour'")

    assert fetch.fetch_mailbox(deps, mailbox_id) == "throttled"

    assert _slots_held(clean_database.dsn) == 0
    wait = _row(
        clean_database.dsn,
        "SELECT extract(epoch FROM next_fetch_at - now()) AS s, lease_owner FROM mailboxes",
    )
    assert 30 < float(wait["s"]) <= 40
    assert wait["lease_owner"] is None


def test_the_tenant_slots_follow_a_raised_cap(clean_database: TestDatabase) -> None:
    with connect(clean_database.dsn) as conn:
        taken = [tenant_limits.acquire_slot(conn, TENANT, "a", 2) for _ in range(3)]
        assert taken == [0, 1, None]
        assert tenant_limits.acquire_slot(conn, TENANT, "a", 3) == 2
        tenant_limits.release_slot(conn, TENANT, 1, "a")
        assert tenant_limits.acquire_slot(conn, TENANT, "b", 3) == 1


def test_a_tenant_with_every_slot_busy_is_skipped_and_a_raised_cap_adds_slots(
    deps: fetch.FetchDeps, clean_database: TestDatabase
) -> None:
    mailbox_id = _mailbox(clean_database.dsn, tenant_row=True)
    with connect(clean_database.dsn, autocommit=True) as conn:
        # Both of the cap's slots held by another replica's runs.
        assert [tenant_limits.acquire_slot(conn, TENANT, "other", 2) for _ in range(2)] == [0, 1]

    assert fetch.fetch_mailbox(deps, mailbox_id) == "skipped"
    after = _row(
        clean_database.dsn,
        "SELECT m.lease_owner, extract(epoch FROM m.next_fetch_at - now()) AS retry_in,"
        " (SELECT count(*) FROM imap_slots) AS slot_rows,"
        " (SELECT count(*) FROM imap_slots WHERE owner = 'other') AS others"
        " FROM mailboxes m WHERE m.id = %s",
        mailbox_id,
    )
    assert after["lease_owner"] is None
    assert float(after["retry_in"]) <= 1.5
    assert (after["slot_rows"], after["others"]) == (2, 2)

    # A cap raised to 3: the run creates the third slot and takes it (then finds no token).
    deps.settings.imap_connections_per_tenant = 3
    with connect(clean_database.dsn, autocommit=True) as conn:
        conn.execute("UPDATE mailboxes SET next_fetch_at = now()")
    assert fetch.fetch_mailbox(deps, mailbox_id) == "token_rejected"
    assert _row(clean_database.dsn, "SELECT count(*) AS n FROM imap_slots")["n"] == 3
    assert _slots_held(clean_database.dsn) == 2  # its own was given back
