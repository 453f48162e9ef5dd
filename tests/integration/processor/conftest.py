"""What the processor's integration tests share: a pool, a mailbox, stored raw mails."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from common.db import create_pool
from tests.support.infra import TestDatabase


@pytest.fixture
def pool(clean_database: TestDatabase) -> Iterator[ConnectionPool]:
    pool = create_pool(clean_database.dsn, name="test-processor", max_size=2)
    yield pool
    pool.close()


@pytest.fixture
def mailbox_id(clean_database: TestDatabase) -> int:
    with psycopg.connect(clean_database.dsn) as conn:
        row = conn.execute(
            "INSERT INTO mailboxes (address, tenant_id) VALUES ('docs@corp.example', 't1')"
            " RETURNING id"
        ).fetchone()
    assert row is not None
    return int(row[0])
