"""A run that drains a backlog for longer than its tenant slot's lease keeps the slot: the
tenant's connection cap holds for the whole run, against the real Dovecot and the real
PostgreSQL. Time is moved on in the database, not waited for: after each stored batch the
slot's lease is made to look 90 seconds old."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from common.db import connect, create_pool
from common.settings import APP_ONLY_IMAP_SCOPE, Settings
from common.tokens import TokenCipher
from services.fetcher import fetch
from services.fetcher.store import tenant_limits
from standin.testing import StandIn
from tests.conftest import new_address
from tests.support.infra import TestDatabase
from tests.support.mail import invoice_mail
from tests.support.services import CLIENT_ID, CLIENT_SECRET

MAILS = 3


@pytest.fixture
def deps(
    standin: StandIn, clean_database: TestDatabase, auth_port: int
) -> Iterator[fetch.FetchDeps]:
    # ``auth_port`` registers the app with the identity emulator; this test only needs that.
    settings = Settings(
        database_url=clean_database.dsn,
        imap_host="127.0.0.1",
        imap_port=standin.dovecot.imaps_port,
        ca_bundle=standin.identity.ca_path,
        fetch_batch_size=1,  # one stored batch per mail: a renewal between each
        imap_connections_per_tenant=1,
        token_keys=Fernet.generate_key().decode(),
    )
    pool = create_pool(clean_database.dsn, name="test-slot-renewal", max_size=2)
    yield fetch.FetchDeps(
        settings=settings, pool=pool, cipher=TokenCipher(settings.fernet), owner="worker-a"
    )
    pool.close()


def _mailbox_with_backlog(
    standin: StandIn, tenant: dict, dsn: str, cipher: TokenCipher
) -> tuple[int, str]:
    """A mailbox of the tenant with ``MAILS`` unread mails and an app token IMAP accepts;
    its id and address."""
    address = new_address(tenant, "backlog")
    control = standin.identity.control
    control.create_user(address, tenant=tenant["id"])
    control.grant_admin_consent(tenant["id"], CLIENT_ID)
    app = standin.identity.msal_app(CLIENT_ID, CLIENT_SECRET, tenant=tenant["id"])
    token = app.acquire_token_for_client(scopes=[APP_ONLY_IMAP_SCOPE])["access_token"]
    standin.dovecot.append_many(address, [invoice_mail(n, to=address)[0] for n in range(MAILS)])
    with connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id) VALUES (%s, %s) RETURNING id",
            (address, tenant["id"]),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO mailbox_tokens (mailbox_id, access_token, access_expires_at)"
            " VALUES (%s, %s, %s)",
            (row["id"], cipher.encrypt(token), datetime.now(UTC) + timedelta(hours=1)),
        )
    return int(row["id"]), address


def test_a_long_run_keeps_its_tenant_slot_and_the_cap_holds(
    deps: fetch.FetchDeps, standin: StandIn, tenant: dict, clean_database: TestDatabase
) -> None:
    dsn = clean_database.dsn
    mailbox_id, address = _mailbox_with_backlog(standin, tenant, dsn, deps.cipher)
    slots_taken_by_another_run: list[int] = []
    batches: list[list[int]] = []

    def enqueue(raw_ids: list[int]) -> None:
        """Called in the run after each stored batch: another replica's run tries the
        tenant's only slot, then the clock moves past the slot's lease."""
        batches.append(raw_ids)
        with connect(dsn, autocommit=True) as conn:
            other = tenant_limits.acquire_slot(conn, tenant["id"], "worker-b", cap=1)
            if other is not None:
                slots_taken_by_another_run.append(other)
                tenant_limits.release_slot(conn, tenant["id"], other, "worker-b")
            conn.execute(
                "UPDATE imap_slots SET lease_until = now() - interval '1 second'"
                " WHERE tenant_id = %s",
                (tenant["id"],),
            )

    deps.enqueue = enqueue
    assert fetch.fetch_mailbox(deps, mailbox_id) == "ok"

    assert len(batches) == MAILS
    # Each batch renewed the slot with the lease: the tenant never had a second connection.
    assert slots_taken_by_another_run == []
    assert standin.dovecot.unseen_uids(address) == []
    with connect(dsn) as conn:
        slot = conn.execute("SELECT owner FROM imap_slots WHERE tenant_id = %s", (tenant["id"],))
        assert slot.fetchall() == [{"owner": None}]  # and freed at the end
